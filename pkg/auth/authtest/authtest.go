// Package authtest gives tests tokens that services started with Config accept.
package authtest

import (
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/pgfleet/pgfleet/pkg/auth"
)

// Config is the auth configuration of services under test.
var Config = auth.Config{
	Secret:   "pgfleet-test-secret-0123456789abcdef",
	Issuer:   "pgfleet-test",
	Audience: "pgfleet-test",
}

// Env is Config as the environment a service's run function reads.
func Env() map[string]string {
	return map[string]string{"JWT_SECRET": Config.Secret, "JWT_ISSUER": Config.Issuer, "JWT_AUDIENCE": Config.Audience}
}

// Token returns a token for subject with roles, valid for an hour.
func Token(tb testing.TB, subject string, roles ...string) string {
	tb.Helper()
	tok, err := Config.Token(subject, roles, time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// As makes one call as subject with roles.
func As(tb testing.TB, subject string, roles ...string) grpc.CallOption {
	tb.Helper()
	return grpc.PerRPCCredentials(auth.Bearer(Token(tb, subject, roles...)))
}

// Admin makes every call of a connection as an admin.
func Admin(tb testing.TB) grpc.DialOption {
	tb.Helper()
	return grpc.WithPerRPCCredentials(auth.Bearer(Token(tb, "admin@pgfleet.test", auth.RoleAdmin)))
}
