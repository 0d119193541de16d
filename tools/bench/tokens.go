package main

import (
	"context"
	"crypto/rand"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/pgfleet/pgfleet/pkg/auth"
)

// tokens mints the bearer tokens the bench sends, signed with the secret the fleet gets as
// JWT_SECRET. With auth off the fleet gets AUTH_DISABLED=true and calls carry no token.
type tokens struct {
	on     bool
	secret string
}

func newTokens(on bool) tokens {
	if !on {
		return tokens{}
	}
	return tokens{on: true, secret: rand.Text() + rand.Text()}
}

// env is what every service (and the gateway) gets so that it verifies these tokens.
func (t tokens) env() []string {
	if !t.on {
		return []string{"AUTH_DISABLED=true"}
	}
	return []string{"JWT_SECRET=" + t.secret, "JWT_ISSUER=pgfleet", "JWT_AUDIENCE=pgfleet"}
}

// mint returns a token for subject with roles, valid for a day, as pkg/auth mints the tokens
// `make run` prints; "" with auth off.
func (t tokens) mint(subject string, roles ...string) (string, error) {
	if !t.on {
		return "", nil
	}
	cfg := auth.Config{Secret: t.secret, Issuer: "pgfleet", Audience: "pgfleet"}
	return cfg.Token(subject, roles, 24*time.Hour)
}

// outgoing returns ctx carrying tok as gRPC authorization metadata.
func outgoing(ctx context.Context, tok string) context.Context {
	if tok == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}
