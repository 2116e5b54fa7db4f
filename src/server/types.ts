/**
 * The hardware parts whose energy carbon-trace measures or estimates.
 *
 * @example
 * ```ts
 * const parts: EnergyComponent[] = ['cpu', 'gpu', 'ram'];
 * ```
 */
export type EnergyComponent = 'cpu' | 'gpu' | 'ram';

/**
 * The energy components a machine can report, in display order.
 *
 * @example
 * ```ts
 * for (const component of ENERGY_COMPONENTS) console.log(component);
 * ```
 */
export const ENERGY_COMPONENTS: readonly EnergyComponent[] = ['cpu', 'gpu', 'ram'];

/**
 * Cumulative joules per component since a source started: monotonic, never reset by reading.
 *
 * @example
 * ```ts
 * const reading: EnergyReading = { cpuJoules: 1520.4, ramJoules: 88.2 };
 * ```
 */
export type EnergyReading = { cpuJoules?: number; gpuJoules?: number; ramJoules?: number };

/**
 * Something that reports the energy a machine used: RAPL counters, NVML, a power model, or your
 * own (a PDU, a smart plug). `read()` returns cumulative joules per component since the source
 * started; the meter takes differences.
 *
 * @example
 * ```ts
 * const plug: EnergySource = { name: 'smart plug', measured: true, read: async () => ({ cpuJoules: await plugJoules() }) };
 * ```
 */
export type EnergySource = {
  /** How `describe()` and traces name it, e.g. `'RAPL package-0,1'`. */
  name: string;
  /** Whether its figures are measured by hardware (`true`) or modelled (`false`). */
  measured: boolean;
  read(): EnergyReading | Promise<EnergyReading>;
  close?(): void | Promise<void>;
};

/** Joules per component. */
export type ComponentJoules = Partial<Record<EnergyComponent, number>>;

/**
 * The energy one request was given, and how sure it is.
 *
 * @example
 * ```ts
 * const energy: RequestEnergy = await request.end();
 * energy.joules.gpu; // J of GPU energy attributed to this request
 * ```
 */
export type RequestEnergy = {
  /** Joules per component attributed to the request. Components no source reports are absent; all are absent when the figure is not known. */
  joules: ComponentJoules;
  /**
   * All components together, J; `undefined` when the meter cannot be sure of the figure (a source
   * could not be read during the request, or none can be read at all) — never a made-up 0.
   */
  totalJoules: number | undefined;
  /** From the request's first counter reading to its last, s. */
  durationSeconds: number;
  /** `true` only when every component with energy came from a measuring source. */
  measured: boolean;
  /** What is missing or doubtful (a source whose read failed, a counter that went back). */
  warnings: string[];
};
