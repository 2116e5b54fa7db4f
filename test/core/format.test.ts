import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatEmissions, formatEnergy, NO_FIGURE } from '../../src/index';

describe('formatEnergy', () => {
  it.each([
    [0.00000017, '170 µWh'],
    [0.00000131, '1.31 mWh'],
    [0.0000000221, '22.1 µWh'],
    [0.0000000063, '6.30 µWh'],
    [0.00131, '1.31 Wh'],
    [1, '1.00 kWh'],
    [2.4, '2.40 kWh'],
    [999, '999 kWh'],
    [1234.5, '1.23 MWh'],
    [2.4585375111111134e-7, '246 µWh'],
    [5.106378511111115e-7, '511 µWh'],
    [1e-15, '1.00 pWh'],
    [1.7e11, '170 TWh'],
    [4.2e15, '4.20 EWh'],
  ])('%s kWh → %s', (kwh, expected) => {
    expect(formatEnergy(kwh)).toBe(expected);
  });

  it('rounds before it picks the unit: 999.7 µWh is 1.00 mWh, never 1.00e+3 µWh', () => {
    expect(formatEnergy(0.0000009997)).toBe('1.00 mWh');
    expect(formatEnergy(0.00000099949)).toBe('999 µWh');
    expect(formatEnergy(0.9996)).toBe('1.00 kWh');
  });

  it('zero is a figure: 0 Wh, not a dash', () => {
    expect(formatEnergy(0)).toBe('0 Wh');
    expect(formatEnergy(-0)).toBe('0 Wh');
  });

  it('past either end of the scale, a bound instead of an exponent', () => {
    expect(formatEnergy(1e-16)).toBe('< 1 pWh');
    expect(formatEnergy(Number.MIN_VALUE)).toBe('< 1 pWh');
    expect(formatEnergy(1e18)).toBe('> 999 EWh');
    expect(formatEnergy(Number.MAX_VALUE)).toBe('> 999 EWh');
  });

  it.each([undefined, null, Number.NaN, -1, -1e-9, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, '0.5', 'abc', '', {}, [], true, 1n, Symbol('x')])(
    'not a figure (%s) → the documented dash',
    (bad) => {
      expect(formatEnergy(bad)).toBe('—');
    },
  );
});

describe('formatEmissions', () => {
  it.each([
    [0.0000000807, '80.7 µg CO2eq'],
    [0.000000622, '622 µg CO2eq'],
    [0.0000000105, '10.5 µg CO2eq'],
    [3.2, '3.20 kg CO2eq'],
    [0.0021894991541875734, '2.19 g CO2eq'],
    [4.955860466698899e-8, '49.6 µg CO2eq'],
    [1500, '1.50 t CO2eq'],
    [3.7e13, '37.0 Gt CO2eq'],
  ])('%s kgCO2eq → %s', (kg, expected) => {
    expect(formatEmissions(kg)).toBe(expected);
  });

  it('{ co2eq: false } drops the suffix, for a column headed CO2eq', () => {
    expect(formatEmissions(0.0000000807, { co2eq: false })).toBe('80.7 µg');
    expect(formatEmissions(0, { co2eq: false })).toBe('0 g');
    expect(formatEmissions(0.0000000807, { co2eq: true })).toBe('80.7 µg CO2eq');
    expect(formatEmissions(0.0000000807, {})).toBe('80.7 µg CO2eq');
  });

  it('zero, bounds, and the dash without a suffix', () => {
    expect(formatEmissions(0)).toBe('0 g CO2eq');
    expect(formatEmissions(1e-18)).toBe('< 1 pg CO2eq');
    expect(formatEmissions(1e16)).toBe('> 999 Gt CO2eq');
    expect(formatEmissions(Number.MAX_VALUE)).toBe('> 999 Gt CO2eq');
  });

  it.each([undefined, null, Number.NaN, -0.5, Number.POSITIVE_INFINITY, '3.2', 'abc', { gwpKgco2eq: 1 }, false])('not a figure (%s) → the documented dash', (bad) => {
    expect(formatEmissions(bad)).toBe('—');
    expect(formatEmissions(bad, { co2eq: false })).toBe('—');
  });

  it('odd options from untyped callers do not throw', () => {
    expect(formatEmissions(1, null as never)).toBe('1.00 kg CO2eq');
    expect(formatEmissions(1, 'x' as never)).toBe('1.00 kg CO2eq');
    expect(formatEmissions(1, JSON.parse('{"__proto__":{"co2eq":false}}'))).toBe('1.00 kg CO2eq');
  });
});

describe('both formatters, over every double', () => {
  // What the examples' output test also checks: at most three significant digits, no exponent.
  const readable = /^(?:—|0 \S+|[<>] (?:1|999) \S+|[1-9]\d{0,2} \S+|[1-9]\.\d\d \S+|[1-9]\d\.\d \S+)(?: CO2eq)?$/;

  it('always a dash, a zero, a bound, or three significant figures in 1–999 with a unit; never an exponent', () => {
    fc.assert(
      fc.property(fc.oneof(fc.double(), fc.double({ min: 1e-20, max: 1e20, noNaN: true }), fc.anything()), (value) => {
        for (const text of [formatEnergy(value), formatEmissions(value), formatEmissions(value, { co2eq: false })]) {
          expect(text).toMatch(readable);
          expect(text).not.toMatch(/\de[+-]?\d/i);
        }
      }),
      { numRuns: Number(process.env.CARBON_TRACE_FUZZ_RUNS ?? 500) },
    );
  });

  it('NO_FIGURE is the dash the docs promise', () => {
    expect(NO_FIGURE).toBe('—');
  });
});
