import type { FleetShipperState } from './shipper';

/**
 * The fleet's database as Prometheus reads it, after the books' own families in `/metrics`:
 * whether it took the last send, what waits for it, and the rows it could not take.
 *
 * @example
 * ```ts
 * text += fleetMetrics(shipper.state());
 * ```
 */
export function fleetMetrics(fleet: FleetShipperState): string {
  const lines = [
    '# HELP carbon_trace_fleet_database_up Whether the fleet\'s database took the last send (1) or not (0).',
    '# TYPE carbon_trace_fleet_database_up gauge',
    `carbon_trace_fleet_database_up ${fleet.connected ? 1 : 0}`,
    '# HELP carbon_trace_fleet_set_aside_rows_total Ledger rows the fleet\'s database could not take (they stay in the ledger).',
    '# TYPE carbon_trace_fleet_set_aside_rows_total counter',
    `carbon_trace_fleet_set_aside_rows_total ${fleet.setAsideRows}`,
  ];
  if (fleet.waitingBytes !== undefined) {
    lines.push('# HELP carbon_trace_fleet_waiting_bytes Bytes of the ledger not yet in the fleet\'s database.', '# TYPE carbon_trace_fleet_waiting_bytes gauge', `carbon_trace_fleet_waiting_bytes ${fleet.waitingBytes}`);
  }
  return `${lines.join('\n')}\n`;
}

