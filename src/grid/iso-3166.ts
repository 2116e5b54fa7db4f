/**
 * ISO 3166-1 alpha-2 → alpha-3 country codes (the standard's public code list; Kosovo's
 * user-assigned XK → XKX as Ember uses it, and UK → GBR as commonly written), so that zones can be
 * given as 'FR' as well as 'FRA'. Packed as "AAXXX" words to keep the entry small.
 */
const PACKED = [
  'ADAND AEARE AFAFG AGATG AIAIA ALALB AMARM AOAGO AQATA ARARG ASASM ATAUT AUAUS AWABW AXALA AZAZE',
  'BABIH BBBRB BDBGD BEBEL BFBFA BGBGR BHBHR BIBDI BJBEN BLBLM BMBMU BNBRN BOBOL BQBES BRBRA BSBHS',
  'BTBTN BVBVT BWBWA BYBLR BZBLZ CACAN CCCCK CDCOD CFCAF CGCOG CHCHE CICIV CKCOK CLCHL CMCMR CNCHN',
  'COCOL CRCRI CUCUB CVCPV CWCUW CXCXR CYCYP CZCZE DEDEU DJDJI DKDNK DMDMA DODOM DZDZA ECECU EEEST',
  'EGEGY EHESH ERERI ESESP ETETH FIFIN FJFJI FKFLK FMFSM FOFRO FRFRA GAGAB GBGBR GDGRD GEGEO GFGUF',
  'GGGGY GHGHA GIGIB GLGRL GMGMB GNGIN GPGLP GQGNQ GRGRC GSSGS GTGTM GUGUM GWGNB GYGUY HKHKG HMHMD',
  'HNHND HRHRV HTHTI HUHUN IDIDN IEIRL ILISR IMIMN ININD IOIOT IQIRQ IRIRN ISISL ITITA JEJEY JMJAM',
  'JOJOR JPJPN KEKEN KGKGZ KHKHM KIKIR KMCOM KNKNA KPPRK KRKOR KWKWT KYCYM KZKAZ LALAO LBLBN LCLCA',
  'LILIE LKLKA LRLBR LSLSO LTLTU LULUX LVLVA LYLBY MAMAR MCMCO MDMDA MEMNE MFMAF MGMDG MHMHL MKMKD',
  'MLMLI MMMMR MNMNG MOMAC MPMNP MQMTQ MRMRT MSMSR MTMLT MUMUS MVMDV MWMWI MXMEX MYMYS MZMOZ NANAM',
  'NCNCL NENER NFNFK NGNGA NINIC NLNLD NONOR NPNPL NRNRU NUNIU NZNZL OMOMN PAPAN PEPER PFPYF PGPNG',
  'PHPHL PKPAK PLPOL PMSPM PNPCN PRPRI PSPSE PTPRT PWPLW PYPRY QAQAT REREU ROROU RSSRB RURUS RWRWA',
  'SASAU SBSLB SCSYC SDSDN SESWE SGSGP SHSHN SISVN SJSJM SKSVK SLSLE SMSMR SNSEN SOSOM SRSUR SSSSD',
  'STSTP SVSLV SXSXM SYSYR SZSWZ TCTCA TDTCD TFATF TGTGO THTHA TJTJK TKTKL TLTLS TMTKM TNTUN TOTON',
  'TRTUR TTTTO TVTUV TWTWN TZTZA UAUKR UGUGA UMUMI USUSA UYURY UZUZB VAVAT VCVCT VEVEN VGVGB VIVIR',
  'VNVNM VUVUT WFWLF WSWSM YEYEM YTMYT ZAZAF ZMZMB ZWZWE XKXKX',
].join(' ');

const ALPHA2_TO_ALPHA3: ReadonlyMap<string, string> = new Map(
  [...PACKED.split(' ').map((word) => [word.slice(0, 2), word.slice(2)] as const), ['UK', 'GBR'] as const],
);

/**
 * The ISO 3166-1 alpha-3 code of an alpha-2 code ('FR' → 'FRA'), or `undefined`.
 *
 * @example
 * ```ts
 * alpha3Of('se'); // 'SWE'
 * ```
 */
export function alpha3Of(alpha2: string): string | undefined {
  return ALPHA2_TO_ALPHA3.get(alpha2.toUpperCase());
}

/**
 * The key a zone as users write it is looked up under: trimmed, upper case, an alpha-2 country
 * code turned into its alpha-3 code ('fr' → 'FRA'), and EcoLogits' WOR written WORLD as CO2.js
 * writes the world average.
 *
 * @example
 * ```ts
 * zoneKey(' fr '); // 'FRA'
 * zoneKey('wor');  // 'WORLD'
 * ```
 */
export function zoneKey(zone: string): string {
  const given = String(zone).trim().toUpperCase();
  return given.length === 2 ? (alpha3Of(given) ?? given) : given === 'WOR' ? 'WORLD' : given;
}

/**
 * What to write instead of an unknown zone, in every warning that refuses one.
 *
 * @example
 * ```ts
 * warn(`unknown grid zone "XX" (${ZONE_HINT})`);
 * ```
 */
export const ZONE_HINT = "use an ISO 3166-1 country code such as 'FR' or 'FRA', or a region such as 'WORLD'";
