/**
 * The fleet's books in Postgres, and the books over any period: `createFleetShipper` sends a
 * proxy's ledger to the database, `reportFromDatabase` and `reportFromLedger` read a period's
 * books grouped by model, API key, user, project, instance, day or hour.
 */
export { createFleetShipper, type FleetShipper, type FleetShipperOptions, type FleetShipperState } from './shipper';
export { GROUP_KEYS, parseBound, parseReportQuery, reportFromDatabase, reportFromLedger, defaultInstanceName, type GroupKey, type IdleFigures, type Report, type ReportFigures, type ReportGroup, type ReportQuery } from './report';
export { createFleetPool, redactDatabaseUrl } from './connect';
export { reportCsv, reportTable } from './format';
export { migrate, MIGRATIONS, type Migration } from './schema';
export { instanceIdBeside } from './instance';
export type { Instance } from './rows';
