import { averageIntensity } from '@tgwf/co2/data';
import { describe, expect, it } from 'vitest';
import { parseCarbonTrace, withGridIntensity } from '../../src/index';
import { gridIntensityOfZone, withGridIntensity as withZone } from '../../src/grid/index';

const metrics = parseCarbonTrace({ energy_consumed_wh: 10, emissions_g_co2: 4.75, measured: true })!;

describe('withGridIntensity', () => {
  it('recomputes emissions from energy and flags it', () => {
    const local = withGridIntensity(metrics, { gCo2PerKwh: 56, source: 'supplier 2025' });
    // 0.01 kWh × 56 g/kWh = 0.56 g
    expect(local.gwpKgco2eq).toBeCloseTo(0.00056, 12);
    expect(local.energyKwh).toBe(metrics.energyKwh);
    expect(local.warnings.at(-1)).toMatch(/derived from energyKwh × 56 gCO2eq\/kWh \(supplier 2025; replaces the server's 0\.00475 kgCO2eq\)/);
    expect(metrics.gwpKgco2eq).toBeCloseTo(0.00475, 12); // the input is untouched
    expect(metrics.warnings).toEqual([]);
  });

  it('fills emissions for a server that sends energy only', () => {
    const energyOnly = parseCarbonTrace({ energy_consumed_wh: 2 })!;
    expect(withGridIntensity(energyOnly, { gCo2PerKwh: 500 }).gwpKgco2eq).toBeCloseTo(0.001, 12);
  });

  it.each([Number.NaN, -1, Number.POSITIVE_INFINITY, '100' as unknown as number])('leaves metrics unchanged for intensity %s, with a warning', (bad) => {
    const out = withGridIntensity(metrics, { gCo2PerKwh: bad });
    expect(out.gwpKgco2eq).toBe(metrics.gwpKgco2eq);
    expect(out.warnings.at(-1)).toMatch(/not recomputed/);
  });

  it('leaves metrics without energy unchanged, with a warning', () => {
    const noEnergy = parseCarbonTrace({ emissions_g_co2: 1 })!;
    const out = withGridIntensity(noEnergy, { gCo2PerKwh: 100 });
    expect(out.gwpKgco2eq).toBe(noEnergy.gwpKgco2eq);
    expect(out.warnings.at(-1)).toMatch(/no energy/);
  });
});

describe('carbon-trace/grid zones (CO2.js average intensities)', () => {
  it('looks zones up in the @tgwf/co2 dataset, case-insensitively', () => {
    const france = averageIntensity.data.FRA!;
    expect(gridIntensityOfZone('fra')).toEqual({ gCo2PerKwh: france, source: expect.stringMatching(/Ember.*@tgwf\/co2.*FRA/), zone: 'FRA' });
    // EcoLogits writes the world average as WOR.
    expect(gridIntensityOfZone('WOR')).toEqual(gridIntensityOfZone('world'));
    const out = withZone(metrics, { zone: 'FRA' });
    expect(out.gwpKgco2eq).toBeCloseTo((0.01 * france) / 1000, 12);
    expect(out.warnings.at(-1)).toMatch(/Ember/);
  });

  it('knows regions and leaves unknown zones unchanged with a warning', () => {
    expect(gridIntensityOfZone('WORLD')?.gCo2PerKwh).toBe(averageIntensity.data.WORLD);
    for (const zone of ['XXX', '__proto__', 'constructor', '']) {
      expect(gridIntensityOfZone(zone)).toBeUndefined();
      const out = withZone(metrics, { zone });
      expect(out.gwpKgco2eq).toBe(metrics.gwpKgco2eq);
      expect(out.warnings.at(-1)).toMatch(/unknown grid zone/);
    }
  });

  it('passes numeric intensities through', () => {
    expect(withZone(metrics, { gCo2PerKwh: 100 }).gwpKgco2eq).toBeCloseTo(0.001, 12);
  });
});

describe('grid zones as users write them', () => {
  it('accepts ISO alpha-2 codes as well as alpha-3, in any case', () => {
    const france = averageIntensity.data.FRA!;
    for (const zone of ['FR', 'fr', ' Fr ', 'FRA', 'fra']) expect(gridIntensityOfZone(zone)?.gCo2PerKwh, zone).toBe(france);
    expect(gridIntensityOfZone('SE')?.gCo2PerKwh).toBe(averageIntensity.data.SWE);
    expect(gridIntensityOfZone('UK')?.gCo2PerKwh).toBe(averageIntensity.data.GBR);
    expect(withZone(metrics, { zone: 'fr' }).gwpKgco2eq).toBeCloseTo((0.01 * france) / 1000, 12);
  });

  it('maps every alpha-2 code to an alpha-3 code the dataset knows, where it knows the country', () => {
    const countries = Object.keys(averageIntensity.data).filter((k) => /^[A-Z]{3}$/.test(k) && k !== 'G20');
    const reached = new Set<string>();
    for (let a = 65; a <= 90; a++) {
      for (let b = 65; b <= 90; b++) {
        const found = gridIntensityOfZone(String.fromCharCode(a, b))?.source?.match(/zone ([A-Z]{3})$/)?.[1];
        if (found) reached.add(found);
      }
    }
    expect(countries.filter((c) => !reached.has(c))).toEqual([]);
  });

  it('sends an unknown zone to the warning handler, like every other warning', () => {
    const warnings: string[] = [];
    const out = withZone(metrics, { zone: 'Frankreich' }, { onWarning: (w) => void warnings.push(w) });
    expect(out.gwpKgco2eq).toBe(metrics.gwpKgco2eq);
    expect(warnings).toEqual([expect.stringMatching(/unknown grid zone "Frankreich" \(use an ISO 3166-1 country code such as 'FR' or 'FRA'/)]);
    const bad: string[] = [];
    withGridIntensity(metrics, { gCo2PerKwh: -5 }, { onWarning: (w) => void bad.push(w) });
    expect(bad).toEqual([expect.stringMatching(/grid intensity -5 is not a number/)]);
  });
});
