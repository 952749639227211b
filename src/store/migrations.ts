import type Database from 'better-sqlite3';
import { StoreError } from './types.js';

/**
 * The schema of the state database as an ordered list of migrations. The applied version is
 * SQLite's `user_version` header field. Migrations only ever get appended: a released one is
 * never edited, a change of schema is a new entry with the next version.
 */
export interface Migration {
  /** 1, 2, 3, ... in array order. */
  readonly version: number;
  readonly description: string;
  /** Runs inside the migration transaction; must not commit or change user_version itself. */
  up(db: Database.Database): void;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'apps, model versions, model settings, selection state',
    up(db) {
      db.exec(`
        CREATE TABLE apps (
          name       TEXT PRIMARY KEY,
          definition TEXT NOT NULL CHECK (json_valid(definition))
        ) STRICT;
        CREATE TABLE model_versions (
          model   TEXT    NOT NULL,
          version INTEGER NOT NULL CHECK (version > 0),
          path    TEXT    NOT NULL,
          kind    TEXT    NOT NULL CHECK (kind IN ('onnx', 'js')),
          config  TEXT    NOT NULL CHECK (json_valid(config)),
          PRIMARY KEY (model, version)
        ) STRICT;
        CREATE TABLE model_settings (
          model           TEXT PRIMARY KEY,
          current_version INTEGER CHECK (current_version > 0),
          replicas        INTEGER CHECK (replicas > 0)
        ) STRICT;
        CREATE TABLE selection_state (
          app        TEXT    NOT NULL,
          context    TEXT    NOT NULL,
          state      TEXT    NOT NULL CHECK (json_valid(state)),
          updated_at INTEGER NOT NULL,
          PRIMARY KEY (app, context)
        ) STRICT, WITHOUT ROWID;
      `);
    },
  },
  {
    version: 2,
    description: "model versions served by containers (kind 'container', empty path) and a meta column",
    up(db) {
      // SQLite cannot change a CHECK constraint in place: rebuild the table.
      db.exec(`
        CREATE TABLE model_versions_v2 (
          model   TEXT    NOT NULL,
          version INTEGER NOT NULL CHECK (version > 0),
          path    TEXT    NOT NULL,
          kind    TEXT    NOT NULL CHECK (kind IN ('onnx', 'js', 'container')),
          config  TEXT    NOT NULL CHECK (json_valid(config)),
          meta    TEXT    CHECK (meta IS NULL OR json_valid(meta)),
          PRIMARY KEY (model, version)
        ) STRICT;
        INSERT INTO model_versions_v2 (model, version, path, kind, config) SELECT model, version, path, kind, config FROM model_versions;
        DROP TABLE model_versions;
        ALTER TABLE model_versions_v2 RENAME TO model_versions;
      `);
    },
  },
  {
    version: 3,
    description: 'repository versions the operator unloaded or deleted (they must not come back at start)',
    up(db) {
      db.exec(`
        CREATE TABLE repository_removals (
          model   TEXT    NOT NULL,
          version INTEGER NOT NULL CHECK (version >= 0),
          state   TEXT    NOT NULL CHECK (state IN ('unloaded', 'deleted')),
          PRIMARY KEY (model, version)
        ) STRICT;
      `);
    },
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

function checkOrder(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration #${i} has version ${m.version}; versions must be 1, 2, 3, ... in order`);
  });
}

export function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/**
 * Bring `db` to the newest version of `migrations`, all pending steps in one IMMEDIATE
 * transaction (a failing step leaves the database exactly as it was). A database written by a
 * newer schema than `migrations` knows is refused with StoreError('SCHEMA_TOO_NEW').
 */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): { from: number; to: number } {
  checkOrder(migrations);
  const latest = migrations.length;
  const run = db.transaction(() => {
    const from = schemaVersion(db);
    if (from > latest) {
      throw new StoreError('SCHEMA_TOO_NEW', `state database ${db.name} has schema version ${from}, newer than the ${latest} this server supports; upgrade the server or use another --state-db`);
    }
    for (const m of migrations.slice(from)) {
      m.up(db);
      db.pragma(`user_version = ${m.version}`);
    }
    return { from, to: latest };
  });
  return run.immediate();
}
