/**
 * The energy meter's own CPU, measured in a fresh process so that nothing else it did (garbage
 * from earlier benchmarks, open sockets) is counted: `meter` runs a meter with this machine's
 * sources at a 100 ms interval, `baseline` a no-op 100 ms timer. Prints the CPU share of one core.
 *
 *   node --import tsx bench/meter-cpu.ts meter|baseline <seconds>
 */
import { createEnergyMeter } from '../src/server/index';

const [mode = 'meter', seconds = '5'] = process.argv.slice(2);
let close: () => Promise<void> = async () => {};
let description = 'a no-op 100 ms timer';
if (mode === 'meter') {
  const meter = createEnergyMeter({ sources: 'auto', sampleIntervalMs: 100, onWarning: false });
  await meter.ready;
  description = meter.describe();
  close = () => meter.close();
} else {
  const timer = setInterval(() => {}, 100);
  close = async () => clearInterval(timer);
}
// Let start-up garbage be collected before measuring.
await new Promise((resolve) => setTimeout(resolve, 1000));
const cpu = process.cpuUsage();
const wall = performance.now();
await new Promise((resolve) => setTimeout(resolve, Number(seconds) * 1000));
const used = process.cpuUsage(cpu);
await close();
console.log(JSON.stringify({ share: (used.user + used.system) / 1000 / (performance.now() - wall), description }));
