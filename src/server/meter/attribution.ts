import type { ComponentJoules, EnergyComponent } from '../types';

/**
 * One request's part in a slice of time: the tokens it produced in the slice when its response
 * is streamed (so its pace is known), `undefined` when it is not.
 *
 * @example
 * ```ts
 * const part: SliceParticipant = { id: 'r1', tokens: 12 };
 * ```
 */
export type SliceParticipant = { id: string; tokens?: number };

/**
 * Splits the energy of one slice of time between the requests active in all of it: in proportion
 * to the tokens each produced in the slice when every one of them is streamed and some tokens
 * were produced, equally otherwise. The shares add up to the slice's energy (to float error).
 * With no participant, nothing is split: the caller books the slice as idle.
 *
 * Pure, so that conservation and fairness can be property-tested apart from any clock or meter.
 *
 * @example
 * ```ts
 * splitSlice({ gpu: 100 }, [{ id: 'a', tokens: 3 }, { id: 'b', tokens: 1 }]); // a: 75 J, b: 25 J
 * ```
 */
export function splitSlice(energy: ComponentJoules, participants: readonly SliceParticipant[]): Map<string, ComponentJoules> {
  const shares = new Map<string, ComponentJoules>();
  if (participants.length === 0) return shares;
  const byTokens = participants.every((p) => typeof p.tokens === 'number' && p.tokens >= 0);
  const totalTokens = byTokens ? participants.reduce((sum, p) => sum + (p.tokens as number), 0) : 0;
  const weightOf = (p: SliceParticipant) => (totalTokens > 0 ? (p.tokens as number) / totalTokens : 1 / participants.length);
  for (const p of participants) {
    const weight = weightOf(p);
    const share: ComponentJoules = {};
    for (const component of Object.keys(energy) as EnergyComponent[]) share[component] = (energy[component] ?? 0) * weight;
    shares.set(p.id, share);
  }
  return shares;
}

/**
 * Adds `delta` into `into`, component by component.
 *
 * @example
 * ```ts
 * addJoules(total, { cpu: 2.5 });
 * ```
 */
export function addJoules(into: ComponentJoules, delta: ComponentJoules): ComponentJoules {
  for (const component of Object.keys(delta) as EnergyComponent[]) into[component] = (into[component] ?? 0) + (delta[component] ?? 0);
  return into;
}

/**
 * The sum over components.
 *
 * @example
 * ```ts
 * sumJoules({ cpu: 1, gpu: 2 }); // 3
 * ```
 */
export function sumJoules(joules: ComponentJoules): number {
  let sum = 0;
  for (const value of Object.values(joules)) sum += value ?? 0;
  return sum;
}
