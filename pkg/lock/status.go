package lock

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Querier runs a query; *pgxpool.Pool, *pgx.Conn and pgx.Tx have it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Info is one lock held or awaited by a session, as Status reports it.
type Info struct {
	// Resource is the lock's name if this process has locked it recently, else its
	// advisory key in hex (another replica's lock, or an old one).
	Resource        string
	Mode            Mode
	Granted         bool
	PID             int32
	WaitStart       time.Time // when the wait began; zero once granted
	XactStart       time.Time // zero if pg_stat_activity hides it from this role
	ApplicationName string
	// Intent marks a wait for the shared hierarchy lock that any lock at or below
	// Resource takes first; an Exclusive lock on Resource is what it waits for. Mode is
	// Read. Granted intent locks are not listed: the locks they come with are.
	Intent bool
}

// Status lists the locks of this Locker's namespace held or awaited in the current
// database, by every session and replica, waiters after holders, oldest first.
func (l *Locker) Status(ctx context.Context, db Querier) ([]Info, error) {
	const q = `
		SELECT l.classid::bigint, l.objid::bigint, l.mode, l.granted, l.pid, l.waitstart,
		       a.xact_start, coalesce(a.application_name, '')
		FROM pg_locks l
		LEFT JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory'
		  AND l.objsubid = 1
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND l.classid::bigint >> 8 = $1
		ORDER BY l.granted DESC, l.waitstart, a.xact_start, l.pid`
	rows, err := db.Query(ctx, q, l.space.classPrefix())
	if err != nil {
		return nil, fmt.Errorf("query lock status: %w", err)
	}
	var out []Info
	var (
		hi, lo          int64
		pgMode, app     string
		granted         bool
		pid             int32
		waitStart, xact *time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&hi, &lo, &pgMode, &granted, &pid, &waitStart, &xact, &app}, func() error {
		key := uint64(hi)<<32 | uint64(lo)
		exclusive := pgMode == "ExclusiveLock"
		in := Info{Granted: granted, PID: pid, ApplicationName: app}
		switch {
		case key&1 == kindSelf && exclusive:
			in.Mode = Write
		case key&1 == kindSelf:
			in.Mode = Read
		case exclusive:
			in.Mode = Exclusive
		case !granted:
			in.Mode, in.Intent = Read, true
		default:
			return nil
		}
		base := key &^ 1
		if name, ok := l.names.get(base); ok {
			in.Resource = name
		} else {
			in.Resource = fmt.Sprintf("%#016x", base)
		}
		if waitStart != nil {
			in.WaitStart = *waitStart
		}
		if xact != nil {
			in.XactStart = *xact
		}
		out = append(out, in)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read lock status: %w", err)
	}
	return out, nil
}
