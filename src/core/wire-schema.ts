import { z } from 'zod/v4';

/**
 * Largest wire value we accept for any number. Anything above 2^53 is not a measurement of one
 * model call, and admitting it would let a handful of calls overflow totals to Infinity.
 *
 * @example
 * ```ts
 * parseCarbonTrace({ energy_consumed_wh: MAX_WIRE_VALUE * 2 })?.warnings; // ['energy_consumed_wh dropped: implausibly large (…)']
 * ```
 */
export const MAX_WIRE_VALUE = Number.MAX_SAFE_INTEGER;

// Plain decimal notation only: `Number()` alone would also accept '', '0x1f' and ' '.
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$/i;

const numericString = z
  .string()
  .trim()
  .regex(DECIMAL, { error: 'not a number' })
  .transform(Number);

const wireNumber = z
  .union([z.number({ error: 'not a number' }), numericString], { error: 'not a number' })
  .pipe(
    z
      .number()
      .min(0, { error: 'negative' })
      .max(MAX_WIRE_VALUE, { error: 'implausibly large' }),
  );

const wireCount = wireNumber.pipe(z.number().int({ error: 'not an integer' }));

// `measured` is true only for an explicit yes; anything else reads as "estimated".
const wireFlag = z
  .union([z.boolean(), z.literal(['true', 'false', 1, 0])], { error: 'not a boolean' })
  .transform((value) => value === true || value === 'true' || value === 1);

/**
 * Schema of one wire field each, in the units the server sends (Wh, g, kg, W, s).
 * Kept per field so that one bad value drops one field, not the whole record.
 *
 * @example
 * ```ts
 * carbonTraceWireFields.energy_consumed_wh.safeParse('1.5'); // { success: true, data: 1.5 }
 * ```
 */
export const carbonTraceWireFields = {
  emissions_g_co2: wireNumber,
  emissions_per_request_g: wireNumber,
  energy_consumed_wh: wireNumber,
  cpu_energy_wh: wireNumber,
  gpu_energy_wh: wireNumber,
  ram_energy_wh: wireNumber,
  cpu_power_watts: wireNumber,
  gpu_power_watts: wireNumber,
  ram_power_watts: wireNumber,
  duration_seconds: wireNumber,
  prompt_tokens: wireCount,
  completion_tokens: wireCount,
  session_total_kg_co2: wireNumber,
  session_requests: wireCount,
  session_tokens: wireCount,
  measured: wireFlag,
  tracking_active: wireFlag,
} as const;

const COUNT_FIELDS: ReadonlySet<string> = new Set(['prompt_tokens', 'completion_tokens', 'session_requests', 'session_tokens']);
const FLAG_FIELDS: ReadonlySet<string> = new Set(['measured', 'tracking_active']);

/**
 * The value of a field when it is already what the schema would produce — a plain in-range
 * number, or a boolean flag — else `undefined`. Almost every real trace takes only this path;
 * it skips zod's machinery without changing a result (a property test holds the two equal).
 *
 * @example
 * ```ts
 * plainWireValue('energy_consumed_wh', 1.5); // 1.5
 * plainWireValue('energy_consumed_wh', '1.5'); // undefined: let the schema coerce and warn
 * ```
 */
export function plainWireValue(name: CarbonTraceWireField, raw: unknown): number | boolean | undefined {
  if (FLAG_FIELDS.has(name)) return typeof raw === 'boolean' ? raw : undefined;
  // NaN fails both comparisons; ±Infinity fails one.
  if (typeof raw !== 'number' || !(raw >= 0 && raw <= MAX_WIRE_VALUE)) return undefined;
  if (COUNT_FIELDS.has(name) && !Number.isInteger(raw)) return undefined;
  return raw + 0; // -0 → 0
}

/**
 * Names of the wire fields carbon-trace reads.
 *
 * @example
 * ```ts
 * const field: CarbonTraceWireField = 'emissions_g_co2';
 * ```
 */
export type CarbonTraceWireField = keyof typeof carbonTraceWireFields;

/**
 * The `x_carbon_trace` object as CodeCarbon-instrumented servers send it.
 *
 * Loose on purpose: servers add fields release by release (Model Garden v1 → v2), and a field we
 * do not know must never make a call lose its metrics. Every field is optional because each
 * known server omits some. {@link parseCarbonTrace} applies these field schemas one by one, so a
 * bad field is dropped with a warning instead of failing the record; use this schema directly
 * only to check a server's output strictly.
 *
 * @example
 * ```ts
 * import { carbonTraceWireSchema } from 'carbon-trace';
 * const result = carbonTraceWireSchema.safeParse(body.x_carbon_trace);
 * if (!result.success) console.log(result.error.issues);
 * ```
 */
export const carbonTraceWireSchema = z.looseObject(
  Object.fromEntries(
    Object.entries(carbonTraceWireFields).map(([name, schema]) => [name, schema.optional()]),
  ) as { [K in CarbonTraceWireField]: z.ZodOptional<(typeof carbonTraceWireFields)[K]> },
);

/**
 * The wire record's type, as it is on the wire (strings allowed where servers send them).
 *
 * @example
 * ```ts
 * import type { CarbonTraceWire } from 'carbon-trace';
 * const trace: CarbonTraceWire = { emissions_g_co2: 0.42, energy_consumed_wh: 1.2, measured: true };
 * ```
 */
export type CarbonTraceWire = z.input<typeof carbonTraceWireSchema>;
