/**
 * The fleet's tables in Postgres, made and migrated by the proxies themselves. Each migration runs
 * once, in order, in a transaction, under an advisory lock: twenty proxies starting at once migrate
 * the database once.
 */
import type { PoolClient } from 'pg';

/**
 * One schema change: `version` is its place in the order, never reused.
 *
 * @example
 * ```ts
 * const m: Migration = { version: 2, name: 'add a column', sql: 'ALTER TABLE …' };
 * ```
 */
export type Migration = { version: number; name: string; sql: string };

/**
 * The migrations, in order. Energy in kWh and emissions in kg CO2eq, as the ledger; one row per
 * closed request, keyed by the run that wrote it and where it ends in that run's ledger, so a row
 * sent twice is stored once.
 *
 * @example
 * ```ts
 * MIGRATIONS.at(-1)!.version; // the schema's version
 * ```
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'requests, idle intervals, daily rollups, shipping offsets',
    sql: `
CREATE TABLE carbon_trace_requests (
  run_id uuid NOT NULL,
  ledger_offset bigint NOT NULL,
  at timestamptz NOT NULL,
  instance text NOT NULL,
  instance_id uuid NOT NULL,
  host text NOT NULL,
  project text NOT NULL,
  model text,
  api_key_id text,
  end_user text,
  kind text,
  status integer NOT NULL,
  streamed boolean NOT NULL,
  measured boolean,
  trace_delivered boolean,
  expects_usage boolean,
  duration_s double precision,
  cpu_energy_kwh double precision,
  gpu_energy_kwh double precision,
  ram_energy_kwh double precision,
  energy_kwh double precision,
  emissions_kg double precision,
  prompt_tokens bigint,
  completion_tokens bigint,
  grid_g_per_kwh double precision,
  grid_source text,
  warnings text,
  PRIMARY KEY (run_id, ledger_offset)
);
-- Rows arrive in time order: a BRIN index is a few pages for a billion rows. A range not yet
-- summarized matches every query (a day's report read the whole table: 34 s at 100 M rows), so
-- each range is summarized as soon as it fills.
CREATE INDEX carbon_trace_requests_at ON carbon_trace_requests USING brin (at) WITH (autosummarize = on);

CREATE TABLE carbon_trace_idle (
  run_id uuid NOT NULL,
  log_offset bigint NOT NULL,
  from_at timestamptz NOT NULL,
  at timestamptz NOT NULL,
  instance text NOT NULL,
  instance_id uuid NOT NULL,
  host text NOT NULL,
  project text NOT NULL,
  cpu_idle_kwh double precision,
  gpu_idle_kwh double precision,
  ram_idle_kwh double precision,
  idle_kwh double precision NOT NULL,
  idle_emissions_kg double precision NOT NULL,
  cpu_unattributed_kwh double precision,
  gpu_unattributed_kwh double precision,
  ram_unattributed_kwh double precision,
  unattributed_kwh double precision NOT NULL,
  unattributed_emissions_kg double precision NOT NULL,
  PRIMARY KEY (run_id, log_offset)
);
CREATE INDEX carbon_trace_idle_at ON carbon_trace_idle USING brin (at) WITH (autosummarize = on);

-- A rollup's key is a hash of its names: the names are client strings of up to 16 KiB, larger
-- than a btree key may be (2,704 bytes), and a key that fails would stop every row after it.
CREATE TABLE carbon_trace_daily (
  day date NOT NULL,
  group_key bytea NOT NULL,
  instance text NOT NULL,
  project text NOT NULL,
  model text,
  api_key_id text,
  end_user text,
  kind text,
  requests bigint NOT NULL,
  requests_with_energy bigint NOT NULL,
  measured_requests bigint NOT NULL,
  cpu_energy_kwh double precision NOT NULL,
  gpu_energy_kwh double precision NOT NULL,
  ram_energy_kwh double precision NOT NULL,
  energy_kwh double precision NOT NULL,
  measured_energy_kwh double precision NOT NULL,
  emissions_kg double precision NOT NULL,
  prompt_tokens bigint NOT NULL,
  completion_tokens bigint NOT NULL,
  PRIMARY KEY (day, group_key)
);

CREATE TABLE carbon_trace_idle_daily (
  day date NOT NULL,
  group_key bytea NOT NULL,
  instance text NOT NULL,
  project text NOT NULL,
  cpu_idle_kwh double precision NOT NULL,
  gpu_idle_kwh double precision NOT NULL,
  ram_idle_kwh double precision NOT NULL,
  idle_kwh double precision NOT NULL,
  idle_emissions_kg double precision NOT NULL,
  unattributed_kwh double precision NOT NULL,
  unattributed_emissions_kg double precision NOT NULL,
  PRIMARY KEY (day, group_key)
);

-- How far each run's rows are in the tables: a row at or before it was stored once already, even
-- when --retention has removed it since. Kept forever (a row per proxy run and file), so that a
-- ledger sent again (replaced, restored, its id file copied) never adds to the rollups twice.
CREATE TABLE carbon_trace_runs (
  run_id uuid NOT NULL,
  stream text NOT NULL,
  stored_through bigint NOT NULL,
  PRIMARY KEY (run_id, stream)
);

-- How far each proxy's files have been sent: the next send starts there. Tied to the file by its
-- fingerprint there, so a replaced ledger is sent from its start (the rows' keys keep it exact).
CREATE TABLE carbon_trace_shipped (
  instance_id uuid NOT NULL,
  stream text NOT NULL,
  bytes bigint NOT NULL,
  fingerprint text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (instance_id, stream)
);

-- The fleet's proxies, by their id: a name two live proxies share would merge their books.
CREATE TABLE carbon_trace_instances (
  instance_id uuid PRIMARY KEY,
  name text NOT NULL,
  host text NOT NULL,
  last_seen timestamptz NOT NULL
);

-- What every proxy of the fleet must agree on: the check value of the key-id secret (an id made
-- from a fixed text, which says nothing of the secret), set by the first proxy to connect.
CREATE TABLE carbon_trace_fleet (
  name text PRIMARY KEY,
  value text NOT NULL,
  set_by text NOT NULL,
  set_at timestamptz NOT NULL DEFAULT now()
);

-- Rows before this time were removed by --retention: a report that needs them is refused.
CREATE TABLE carbon_trace_retention (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  rows_kept_since timestamptz NOT NULL
);
`,
  },
];

/** The advisory lock key of the migrations: any constant the fleet shares. */
const MIGRATION_LOCK = 4_172_018_311;

/**
 * Brings the database to the latest schema: creates `carbon_trace_schema` if needed, then runs each
 * migration not yet applied, each in its own transaction, under an advisory lock. Returns the
 * versions it applied.
 *
 * @throws when the database has a newer schema than this version knows (a newer proxy migrated
 * it): an older proxy must not write rows it would shape wrong.
 *
 * @example
 * ```ts
 * const client = await pool.connect();
 * try { await migrate(client); } finally { client.release(); }
 * ```
 */
export async function migrate(client: PoolClient, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
  try {
    await client.query('CREATE TABLE IF NOT EXISTS carbon_trace_schema (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
    const { rows } = await client.query<{ version: number }>('SELECT version FROM carbon_trace_schema');
    const applied = new Set(rows.map((r) => r.version));
    const newest = Math.max(0, ...applied);
    const known = Math.max(0, ...migrations.map((m) => m.version));
    if (newest > known) throw new Error(`the database's carbon-trace schema is version ${newest}, newer than this proxy knows (${known}): upgrade this proxy`);
    const done: number[] = [];
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(migration.version)) continue;
      await client.query('BEGIN');
      try {
        await client.query(migration.sql);
        await client.query('INSERT INTO carbon_trace_schema (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      }
      done.push(migration.version);
    }
    return done;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
  }
}
