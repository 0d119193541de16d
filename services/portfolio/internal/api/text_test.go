package api_test

import (
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
)

// TestText_refused: text with a NUL byte (which PostgreSQL refuses in text: SQLSTATE 22021,
// an INTERNAL error) or another control character is INVALID_ARGUMENT with a violation on
// its field, and writes nothing.
func TestText_refused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user, err := e.client.CreateUser(t.Context(), &portfoliov1.CreateUserRequest{Email: "text@example.com", DisplayName: "Text"})
	if err != nil {
		t.Fatal(err)
	}
	uid := user.GetUser().GetId()
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"display_name_nul", func() error {
			_, err := e.client.CreateUser(t.Context(), &portfoliov1.CreateUserRequest{Email: "nul@example.com", DisplayName: "a\x00b"})
			return err
		}, "display_name"},
		{"display_name_escape", func() error {
			_, err := e.client.CreateUser(t.Context(), &portfoliov1.CreateUserRequest{Email: "esc@example.com", DisplayName: "\x1b[31mred"})
			return err
		}, "display_name"},
		{"email_nul", func() error {
			_, err := e.client.CreateUser(t.Context(), &portfoliov1.CreateUserRequest{Email: "a\x00b@example.com"})
			return err
		}, "email"},
		{"portfolio_name_nul", func() error {
			_, err := e.client.CreatePortfolio(t.Context(), &portfoliov1.CreatePortfolioRequest{UserId: uid, Name: "\x00"})
			return err
		}, "name"},
		{"portfolio_name_c1_control", func() error {
			_, err := e.client.CreatePortfolio(t.Context(), &portfoliov1.CreatePortfolioRequest{UserId: uid, Name: "main\u0085"})
			return err
		}, "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantFieldViolation(t, tt.call(), tt.field)
		})
	}
	if n := e.count(t, "SELECT count(*) FROM portfolio.users") + e.count(t, "SELECT count(*) FROM portfolio.portfolios"); n != 1 {
		t.Errorf("users and portfolios = %d, want only the one user", n)
	}
}

// wantFieldViolation fails unless err is INVALID_ARGUMENT with a BadRequest violation on
// field.
func wantFieldViolation(t *testing.T, err error, field string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("error = %v, want code InvalidArgument", err)
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() == field {
					return
				}
			}
		}
	}
	t.Fatalf("error = %v, want a violation on %q", err, field)
}
