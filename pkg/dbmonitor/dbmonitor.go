// Package dbmonitor serves pgfleet.ops.v1.DatabaseMonitor: one call that tells an operator
// how a service's database looks from inside the service (ping, pool, locks, retries, read
// replicas and where reads went).
package dbmonitor

import (
	"context"
	"math"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/history"
	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/replica"
	"github.com/pgfleet/pgfleet/pkg/retry"
)

// pingTimeout bounds the status call's own round trip, so a hung database gives a
// NOT_SERVING answer instead of a hung status call.
const pingTimeout = 2 * time.Second

// Service implements opsv1.DatabaseMonitorServer.
type Service struct {
	opsv1.UnimplementedDatabaseMonitorServer

	name   string
	pool   *pgxpool.Pool
	locks  *lock.Locker
	retry  *retry.Retrier
	recent *history.Sampler
	reads  *replica.Router
}

// New returns the monitor of the named service's pool, locks and retrier, of its recent
// traffic as recent samples it (nil: none), and of its read replicas and read routing as
// reads sees them (nil: no replica, no reads counted).
func New(name string, pool *pgxpool.Pool, locks *lock.Locker, r *retry.Retrier, recent *history.Sampler, reads *replica.Router) *Service {
	return &Service{name: name, pool: pool, locks: locks, retry: r, recent: recent, reads: reads}
}

// GetDatabaseStatus answers with a fresh snapshot. A database that is down is reported in
// the status (health NOT_SERVING with the error), not as a failed call.
func (s *Service) GetDatabaseStatus(ctx context.Context, _ *opsv1.GetDatabaseStatusRequest) (*opsv1.GetDatabaseStatusResponse, error) {
	st := &opsv1.DatabaseStatus{
		Service:   s.name,
		Pool:      poolStats(s.pool.Stat()),
		Retry:     retryStats(s.retry.Stats()),
		CheckTime: timestamppb.Now(),
	}
	if s.recent != nil {
		st.Recent = Samples(s.recent.Samples())
	}
	if s.reads != nil {
		st.Replicas, st.Reads, st.MaxReplicaLag = Replicas(s.reads.Status())
	}
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	start := time.Now()
	err := s.pool.QueryRow(pctx, "SHOW server_version").Scan(&st.ServerVersion)
	st.ResponseTime = durationpb.New(time.Since(start))
	if err != nil {
		st.Health = opsv1.Health_HEALTH_NOT_SERVING
		st.Error = err.Error()
		return &opsv1.GetDatabaseStatusResponse{Status: st}, nil
	}
	st.Health = opsv1.Health_HEALTH_SERVING
	locks, err := s.locks.Status(pctx, s.pool)
	if err != nil {
		st.Error = "lock status: " + err.Error()
	}
	for _, l := range locks {
		st.Locks = append(st.Locks, lockInfo(l))
	}
	return &opsv1.GetDatabaseStatusResponse{Status: st}, nil
}

func poolStats(ps *pgxpool.Stat) *opsv1.PoolStats {
	return &opsv1.PoolStats{
		MaxConns:             ps.MaxConns(),
		TotalConns:           ps.TotalConns(),
		IdleConns:            ps.IdleConns(),
		AcquiredConns:        ps.AcquiredConns(),
		ConstructingConns:    ps.ConstructingConns(),
		AcquireCount:         ps.AcquireCount(),
		AcquireDuration:      durationpb.New(ps.AcquireDuration()),
		EmptyAcquireCount:    ps.EmptyAcquireCount(),
		CanceledAcquireCount: ps.CanceledAcquireCount(),
		NewConnsCount:        ps.NewConnsCount(),
	}
}

// Samples renders a sampler's samples as DatabaseStatus.recent holds them.
func Samples(in []history.Sample) []*opsv1.Sample {
	out := make([]*opsv1.Sample, len(in))
	for i, h := range in {
		out[i] = &opsv1.Sample{
			Time:           timestamppb.New(h.Time),
			CallsPerSecond: h.CallsPerSecond,
			P99Seconds:     h.P99.Seconds(),
			ErrorRatio:     h.ErrorRatio,
			PoolUse:        h.PoolUse,
		}
	}
	return out
}

// Replicas renders a Router's status as DatabaseStatus.replicas, .reads and .max_replica_lag
// hold it.
func Replicas(rs replica.Status) ([]*opsv1.ReplicaStatus, []*opsv1.ReadCount, *durationpb.Duration) {
	var replicas []*opsv1.ReplicaStatus
	for _, r := range rs.Replicas {
		p := &opsv1.ReplicaStatus{
			Replica:  r.Label,
			Up:       r.Up,
			Usable:   r.Usable,
			LagBytes: int64(min(r.LagBytes, math.MaxInt64)),
			Reads:    r.Reads,
		}
		if r.Up {
			p.ReplayLsn = r.ReplayLSN.String()
		}
		if r.LagKnown {
			p.Lag = durationpb.New(r.Lag)
		}
		if !r.CheckTime.IsZero() {
			p.CheckTime = timestamppb.New(r.CheckTime)
		}
		replicas = append(replicas, p)
	}
	reads := make([]*opsv1.ReadCount, len(rs.Reads))
	for i, c := range rs.Reads {
		reads[i] = &opsv1.ReadCount{Target: c.Target, Reason: c.Reason, Count: c.Count}
	}
	return replicas, reads, durationpb.New(rs.MaxLag)
}

func retryStats(rs retry.Stats) *opsv1.RetryStats {
	return &opsv1.RetryStats{
		Operations:            rs.Operations,
		Retries:               rs.Retries,
		Exhausted:             rs.Exhausted,
		SerializationFailures: rs.SerializationFailures,
		Deadlocks:             rs.Deadlocks,
		LockTimeouts:          rs.LockTimeouts,
		ConnectionErrors:      rs.ConnectionErrors,
		BreakerState:          rs.BreakerState,
		BreakerRejections:     rs.BreakerRejections,
	}
}

var lockModes = map[lock.Mode]opsv1.LockMode{
	lock.Read:      opsv1.LockMode_LOCK_MODE_READ,
	lock.Write:     opsv1.LockMode_LOCK_MODE_WRITE,
	lock.Exclusive: opsv1.LockMode_LOCK_MODE_EXCLUSIVE,
}

func lockInfo(l lock.Info) *opsv1.LockInfo {
	info := &opsv1.LockInfo{
		Resource:        l.Resource,
		Mode:            lockModes[l.Mode],
		Granted:         l.Granted,
		Pid:             l.PID,
		ApplicationName: l.ApplicationName,
	}
	if !l.WaitStart.IsZero() {
		info.WaitStartTime = timestamppb.New(l.WaitStart)
	}
	if !l.XactStart.IsZero() {
		info.TransactionStartTime = timestamppb.New(l.XactStart)
	}
	return info
}
