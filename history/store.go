// Package history is rdsaudit's memory: an embedded store of earlier runs (run
// metadata, the interpreted host facts the rules compare over time, and the findings with
// their first and last sighting), so that a grace-period reset shows as days going up
// between two audits, findings carry new/persisting status, and resolved findings show
// as drift.
//
// The default store is a SQLite file written through the pure-Go driver
// modernc.org/sqlite (no cgo), in WAL mode with a busy timeout; its schema is versioned
// and migrated on open. The timeline is one of evaluation times: runs are ordered,
// loaded ("the previous run", windows) and retained by when they were evaluated (the
// --as-of time of a backfilled run), not by when they were made. A run's history is written in one transaction after its reports
// are published, so a run killed at any point leaves the store as it was. The rule engine
// reads earlier runs only through rules.History, which Load preloads into memory.
package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrCorrupt: the store file is not a readable rdsaudit history (truncated,
	// overwritten, or another program's database).
	ErrCorrupt = errors.New("history store is corrupt")
	// ErrTooNew: the store was written by a newer rdsaudit with a newer schema.
	ErrTooNew = errors.New("history store schema is newer than this rdsaudit")
	// ErrLocked: another rdsaudit run holds the store's run lock.
	ErrLocked = errors.New("another rdsaudit run is in progress on this history store")
	// ErrRunExists: a run with this ID is already recorded.
	ErrRunExists = errors.New("run is already recorded")
	// ErrUnknownRun: no run with this ID is recorded.
	ErrUnknownRun = errors.New("no such run in the history")
	// ErrUnknownHost: the host is in no recorded run.
	ErrUnknownHost = errors.New("host is not in the history")
)

// BusyTimeout is how long a statement waits for another process's write lock before it
// fails with SQLITE_BUSY.
const BusyTimeout = 30 * time.Second

// Store is the embedded SQLite history store. It is safe for concurrent use; several
// processes may open the same file (SQLite serialises writers).
type Store struct {
	path string
	db   *sql.DB
	now  func() time.Time
	// testHook, set by the kill test only, is called at points inside Record's
	// transaction so that the test can stop the process there.
	testHook func(stage string, n int)
}

// Path is the store's file.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// sqliteHeader is the first 16 bytes of every SQLite 3 database file.
const sqliteHeader = "SQLite format 3\x00"

// Open opens (creating if absent) the history store at path, checks that it is intact,
// and applies pending schema migrations. A damaged file is an error naming the file
// (wrapping ErrCorrupt), never an empty history.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("open history store: empty path")
	}
	if err := precheck(path); err != nil {
		return nil, err
	}
	if err := restrictMode(path); err != nil {
		return nil, err
	}
	dsn := path + "?_busy_timeout=" + fmt.Sprint(BusyTimeout.Milliseconds()) +
		"&_txlock=immediate&_foreign_keys=1&_journal_mode=WAL&_synchronous=FULL"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open history store %s: %w", path, err)
	}
	s := &Store{path: path, db: db, now: time.Now}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// restrictMode creates the store file 0640 when it does not exist (SQLite would create
// it 0644 less the umask, and gives its -wal and -shm the database file's mode) and
// tightens an existing store, -wal or -shm that others may read or anyone but the owner
// may write to 0640 (best effort: a store someone else owns stays as it is).
func restrictMode(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open history store %s: %w", path, err)
	}
	f.Close()
	if runtime.GOOS == "windows" {
		return nil
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&^0o640 != 0 {
			_ = os.Chmod(p, fi.Mode().Perm()&0o640)
		}
	}
	return nil
}

// precheck names the file when its header is not SQLite's. An empty (0-byte) file is
// not damage: it is a store that never finished its first transaction (SQLite creates
// the file, writes its rollback journal, and writes the first page only at commit, so a
// run killed in between leaves 0 bytes beside a -journal, or beside a -wal), or one
// another process is creating right now. It holds no history, so nothing is lost by
// opening it: SQLite discards the journal of a 0-page database (or replays a committed
// WAL) and the store is created as on a first run. Every non-empty file must start with
// SQLite's header; anything else (truncated, overwritten, another program's file) is
// ErrCorrupt.
func precheck(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // a new store
	}
	if err != nil {
		return fmt.Errorf("open history store %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open history store %s: %w", path, err)
	}
	if st.IsDir() {
		return fmt.Errorf("open history store %s: is a directory", path)
	}
	if st.Size() == 0 {
		return nil // a store whose first transaction never committed (or is committing)
	}
	hdr := make([]byte, len(sqliteHeader))
	if n, _ := f.Read(hdr); n < len(hdr) || string(hdr) != sqliteHeader {
		return fmt.Errorf("open history store %s: %w: not an SQLite database (bad header)", path, ErrCorrupt)
	}
	return nil
}

// init checks integrity and migrates.
func (s *Store) init(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return s.wrapOpen(err)
	}
	// quick_check reads every page: a truncated file or a damaged b-tree fails here and
	// not halfway through a later query.
	rows, err := s.db.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		return s.wrapOpen(err)
	}
	var problems []string
	for rows.Next() {
		var msg string
		if err := rows.Scan(&msg); err != nil {
			rows.Close()
			return s.wrapOpen(err)
		}
		if msg != "ok" {
			problems = append(problems, msg)
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return s.wrapOpen(err)
	}
	rows.Close()
	if len(problems) > 0 {
		if len(problems) > 3 {
			problems = append(problems[:3], fmt.Sprintf("and %d more", len(problems)-3))
		}
		return fmt.Errorf("open history store %s: %w: integrity check failed: %s", s.path, ErrCorrupt, strings.Join(problems, "; "))
	}
	return s.migrate(ctx)
}

// wrapOpen names the file and classifies SQLite's corruption errors.
func (s *Store) wrapOpen(err error) error {
	if isCorruption(err) {
		return fmt.Errorf("open history store %s: %w: %v", s.path, ErrCorrupt, err)
	}
	return fmt.Errorf("open history store %s: %w", s.path, err)
}

// isCorruption reports whether err is SQLite's SQLITE_CORRUPT (11) or SQLITE_NOTADB
// (26), read from the driver error's (extended) result code.
func isCorruption(err error) bool {
	var c interface{ Code() int }
	if errors.As(err, &c) {
		switch c.Code() & 0xff {
		case 11, 26:
			return true
		}
	}
	return false
}

// migrations are applied in order; migration i brings the schema to version i+1. Never
// edit a released migration: append a new one.
func migrations() []string {
	return []string{
		// 1: runs, host snapshots, findings.
		`CREATE TABLE runs (
		run_id       TEXT PRIMARY KEY,
		started_at   TEXT NOT NULL,            -- UTC, fixed-width RFC 3339 (sorts as text)
		ended_at     TEXT,
		tool_version TEXT NOT NULL DEFAULT '',
		ruleset_hash TEXT NOT NULL DEFAULT '',
		config_hash  TEXT NOT NULL DEFAULT '',
		targeted     INTEGER NOT NULL DEFAULT 0,
		collected    INTEGER NOT NULL DEFAULT 0,
		failed       INTEGER NOT NULL DEFAULT 0,
		origin       TEXT NOT NULL DEFAULT 'run', -- run | import
		recorded_at  TEXT NOT NULL
	);
	CREATE INDEX runs_started ON runs(started_at);
	CREATE TABLE hosts (
		run_id            TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
		host              TEXT NOT NULL,      -- lower-case name, the lookup key
		name              TEXT NOT NULL,      -- as the inventory spells it
		grp               TEXT NOT NULL DEFAULT '',
		status            TEXT NOT NULL DEFAULT '', -- collected | failed | skipped
		failure           TEXT NOT NULL DEFAULT '',
		collected         INTEGER NOT NULL,
		mode              INTEGER,
		mode_source       TEXT NOT NULL DEFAULT '',
		license_servers   TEXT NOT NULL DEFAULT '', -- JSON array
		grace_days        INTEGER,
		grace_key_written TEXT,
		timebomb_sha256   TEXT NOT NULL DEFAULT '',
		os_build          TEXT NOT NULL DEFAULT '',
		install_date      TEXT,
		PRIMARY KEY (run_id, host)
	) WITHOUT ROWID;
	CREATE INDEX hosts_host ON hosts(host);
	CREATE TABLE findings (
		run_id        TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
		finding_id    TEXT NOT NULL,
		rule_id       TEXT NOT NULL,
		subject_kind  TEXT NOT NULL,
		subject_name  TEXT NOT NULL,
		subject_key   TEXT NOT NULL,          -- lower-case subject name
		subject_group TEXT NOT NULL DEFAULT '',
		key           TEXT NOT NULL DEFAULT '',
		severity      INTEGER NOT NULL,
		outcome       TEXT NOT NULL,          -- fail | error
		status        TEXT NOT NULL,          -- new | persisting | waived
		waived        INTEGER NOT NULL DEFAULT 0,
		message       TEXT NOT NULL DEFAULT '',
		first_seen    TEXT NOT NULL,
		last_seen     TEXT NOT NULL,
		PRIMARY KEY (run_id, finding_id)
	) WITHOUT ROWID;
	CREATE INDEX findings_subject ON findings(subject_key);`,
		// 2: the timeline is one of evaluation times (issue 17). A run records when it was
		// evaluated (the --as-of time, or its start), whether that time was pinned, and the
		// collection window of its evidence; a host records when its evidence was
		// collected. Runs recorded before: evaluated at their start, not pinned, window
		// and collection times unknown (NULL).
		`ALTER TABLE runs ADD COLUMN evaluated_at TEXT NOT NULL DEFAULT '';
	UPDATE runs SET evaluated_at = started_at;
	ALTER TABLE runs ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE runs ADD COLUMN window_earliest TEXT;
	ALTER TABLE runs ADD COLUMN window_latest TEXT;
	CREATE INDEX runs_evaluated ON runs(evaluated_at, run_id);
	ALTER TABLE hosts ADD COLUMN collected_at TEXT;`,
		// 3: Per User CAL counts per run and version, read from Active Directory (issue
		// 15), written in the run's transaction and deleted with their run. A store
		// written before this migration may hold a per_user_counts table created on first
		// use (with a started_at copy of the run's start and no foreign key): its rows of
		// runs still recorded are kept, the rest (runs retention removed) dropped. The
		// CREATE IF NOT EXISTS makes the copy a no-op on a store without it.
		`CREATE TABLE IF NOT EXISTS per_user_counts (
		run_id     TEXT NOT NULL,
		started_at TEXT NOT NULL,
		version    TEXT NOT NULL,
		version_id INTEGER NOT NULL DEFAULT 0,
		active     INTEGER NOT NULL,
		expired    INTEGER NOT NULL,
		unknown    INTEGER NOT NULL,
		complete   INTEGER NOT NULL,
		PRIMARY KEY (run_id, version)
	);
	CREATE TABLE per_user_counts_v3 (
		run_id     TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
		version    TEXT NOT NULL,             -- as the report names it, e.g. "2019"
		version_id INTEGER NOT NULL DEFAULT 0, -- the CAL's version ID; 0 when unknown
		active     INTEGER NOT NULL,
		expired    INTEGER NOT NULL,
		unknown    INTEGER NOT NULL,          -- CALs whose expiry is unknown
		complete   INTEGER NOT NULL,          -- every configured domain was read
		PRIMARY KEY (run_id, version)
	) WITHOUT ROWID;
	INSERT INTO per_user_counts_v3(run_id, version, version_id, active, expired, unknown, complete)
		SELECT run_id, version, version_id, active, expired, unknown, complete FROM per_user_counts
		WHERE run_id IN (SELECT run_id FROM runs);
	DROP TABLE per_user_counts;
	ALTER TABLE per_user_counts_v3 RENAME TO per_user_counts;`,
	}
}

// SchemaVersion is the schema version this rdsaudit writes.
func SchemaVersion() int { return len(migrations()) }

func (s *Store) migrate(ctx context.Context) error {
	// _txlock=immediate: BEGIN IMMEDIATE, so two processes opening a new store at once
	// serialise here instead of both creating the tables.
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrapOpen(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TEXT NOT NULL
	)`); err != nil {
		return s.wrapOpen(err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return s.wrapOpen(err)
	}
	if current == 0 {
		// A database with tables but no migrations is someone else's file.
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name <> 'schema_migrations'").Scan(&n); err != nil {
			return s.wrapOpen(err)
		}
		if n > 0 {
			return fmt.Errorf("open history store %s: %w: an SQLite database, but not an rdsaudit history (no schema_migrations)", s.path, ErrCorrupt)
		}
	}
	ms := migrations()
	if current > len(ms) {
		return fmt.Errorf("open history store %s: %w: schema version %d, this rdsaudit knows %d", s.path, ErrTooNew, current, len(ms))
	}
	for v := current + 1; v <= len(ms); v++ {
		if _, err := tx.ExecContext(ctx, ms[v-1]); err != nil {
			return fmt.Errorf("migrate history store %s to version %d: %w", s.path, v, err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)", v, ts(time.Now())); err != nil {
			return fmt.Errorf("migrate history store %s to version %d: %w", s.path, v, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
			return fmt.Errorf("migrate history store %s to version %d: %w", s.path, v, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.wrapOpen(err)
	}
	return nil
}

// Times are stored as fixed-width UTC text so that they sort as text.
const tsLayout = "2006-01-02T15:04:05.000000000Z"

func ts(t time.Time) string { return t.UTC().Format(tsLayout) }

func nullTS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ts(*t)
}

func parseTS(s string) (time.Time, error) {
	t, err := time.Parse(tsLayout, s)
	if err != nil {
		// Tolerate any RFC 3339 text written by hand or by an older tool.
		t, err = time.Parse(time.RFC3339Nano, s)
	}
	return t.UTC(), err
}

func parseNullTS(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := parseTS(s.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}
