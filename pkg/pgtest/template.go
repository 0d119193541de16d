package pgtest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgfleet/pgfleet/pkg/migrate"
)

// template is one migrated template database, built at most once per binary.
type template struct {
	once sync.Once
	name string
	err  error
}

// template returns the name of the template database holding sets, building it if no test
// binary has yet.
func (c *Cluster) template(sets []migrate.Set) (string, error) {
	sum, err := hashSets(sets)
	if err != nil {
		return "", err
	}
	key := hex.EncodeToString(sum[:])
	c.tmplMu.Lock()
	t, ok := c.tmpls[key]
	if !ok {
		t = &template{name: "pgtest_tmpl_" + key[:24]}
		c.tmpls[key] = t
	}
	c.tmplMu.Unlock()
	t.once.Do(func() {
		// Not a test's context: the template outlives the test that happens to build it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		lockKey := int64(binary.BigEndian.Uint64(sum[:8])) //nolint:gosec // a hash; any int64 is a fine lock key
		t.err = c.buildTemplate(ctx, t.name, lockKey, sets)
	})
	return t.name, t.err
}

// hashSets digests the schemas and migration files of sets, so a changed migration gets a new
// template instead of a stale one left on a long-lived server.
func hashSets(sets []migrate.Set) ([sha256.Size]byte, error) {
	h := sha256.New()
	fmt.Fprintf(h, "pgtest template v1\x00")
	for _, s := range sets {
		fmt.Fprintf(h, "schema %q\x00", s.Schema)
		if s.FS == nil {
			continue
		}
		err := fs.WalkDir(s.FS, ".", func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			b, err := fs.ReadFile(s.FS, path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "file %q %d\x00", path, len(b))
			h.Write(b)
			return nil
		})
		if err != nil {
			return [sha256.Size]byte{}, fmt.Errorf("read migrations of %s: %w", s.Schema, err)
		}
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum, nil
}

// buildTemplate creates and migrates database name unless a finished one exists. It holds an
// advisory lock keyed by the hash, so test binaries sharing a server build each template once;
// a finished template is marked by refusing connections, which also keeps stray sessions from
// blocking clones.
func (c *Cluster) buildTemplate(ctx context.Context, name string, lockKey int64, sets []migrate.Set) (err error) {
	conn, err := c.admin.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("template %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		conn.Release()
		return fmt.Errorf("template %s: lock: %w", name, err)
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey); uerr != nil {
			// A session lock left on a pooled connection would block other binaries forever.
			_ = conn.Hijack().Close(context.WithoutCancel(ctx))
			err = errors.Join(err, fmt.Errorf("template %s: unlock: %w", name, uerr))
			return
		}
		conn.Release()
	}()

	var allowConn bool
	err = conn.QueryRow(ctx, "SELECT datallowconn FROM pg_database WHERE datname = $1", name).Scan(&allowConn)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("template %s: look up: %w", name, err)
	case !allowConn:
		return nil // finished by another binary
	default: // half-built by a binary that died; we hold the lock, so nobody is building it
		if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("template %s: drop unfinished: %w", name, err)
		}
	}

	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return fmt.Errorf("template %s: create: %w", name, err)
	}
	if err := c.migrate(ctx, name, sets); err != nil {
		_, derr := conn.Exec(ctx, "DROP DATABASE "+ident+" WITH (FORCE)")
		return errors.Join(fmt.Errorf("template %s: %w", name, err), derr)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident+" WITH ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("template %s: seal: %w", name, err)
	}
	return nil
}

// migrate applies sets to database name through a short-lived pool.
func (c *Cluster) migrate(ctx context.Context, name string, sets []migrate.Set) error {
	pool, err := pgxpool.New(ctx, c.URL(name))
	if err != nil {
		return err
	}
	defer pool.Close()
	return migrate.Up(ctx, pool, sets...)
}
