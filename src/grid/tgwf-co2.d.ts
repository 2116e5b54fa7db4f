// @tgwf/co2 ships no type declarations; this is the part of its data module we read.
declare module '@tgwf/co2/data' {
  export const averageIntensity: { data: Record<string, number>; type: string };
}
