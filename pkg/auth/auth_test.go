package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/auth"
)

const (
	secret   = "test-secret-0123456789abcdef-0123456789"
	getStock = "/pgfleet.stock.v1.StockService/GetStock"
	upsert   = "/pgfleet.stock.v1.StockService/UpsertStocks"
	trade    = "/pgfleet.portfolio.v1.PortfolioService/ExecuteTrade"
	health   = "/grpc.health.v1.Health/Check"
)

var (
	cfg    = auth.Config{Secret: secret, Issuer: "pgfleet", Audience: "pgfleet"}
	policy = auth.Policy{
		"pgfleet.stock.v1.StockService":         auth.Public,
		upsert:                                  auth.Roles(auth.RoleIngest, auth.RoleAdmin),
		"pgfleet.portfolio.v1.PortfolioService": auth.Authenticated,
	}
)

// sign returns a token with claims, signed by method with key.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func claims(mod func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{"iss": "pgfleet", "aud": "pgfleet", "sub": "ada@example.com",
		"exp": time.Now().Add(time.Hour).Unix(), "roles": []string{}}
	if mod != nil {
		mod(c)
	}
	return c
}

func incoming(authorization ...string) context.Context {
	md := metadata.MD{}
	for _, a := range authorization {
		md.Append("authorization", a)
	}
	return metadata.NewIncomingContext(context.Background(), md)
}

func TestAuthorizer(t *testing.T) {
	t.Parallel()
	a, err := auth.NewAuthorizer(cfg, policy)
	if err != nil {
		t.Fatal(err)
	}
	user := sign(t, jwt.SigningMethodHS256, []byte(secret), claims(nil))
	ingest := sign(t, jwt.SigningMethodHS256, []byte(secret), claims(func(c jwt.MapClaims) { c["roles"] = []string{"ingest"} }))
	cases := []struct {
		name   string
		method string
		header []string
		want   codes.Code
		wantP  *auth.Principal // the principal the handler gets, when the call passes
		reason apierr.Reason   // the ErrorInfo reason, when it fails
	}{
		{name: "public without token", method: getStock, want: codes.OK},
		{name: "public with token", method: getStock, header: []string{"Bearer " + user}, want: codes.OK,
			wantP: &auth.Principal{Subject: "ada@example.com", Roles: []string{}}},
		{name: "public with bad token", method: getStock, header: []string{"Bearer x.y.z"}, want: codes.Unauthenticated, reason: apierr.TokenInvalid},
		{name: "authenticated without token", method: trade, want: codes.Unauthenticated, reason: apierr.TokenMissing},
		{name: "authenticated", method: trade, header: []string{"Bearer " + user}, want: codes.OK,
			wantP: &auth.Principal{Subject: "ada@example.com", Roles: []string{}}},
		{name: "scheme in any case", method: trade, header: []string{"bearer " + user}, want: codes.OK,
			wantP: &auth.Principal{Subject: "ada@example.com", Roles: []string{}}},
		{name: "basic scheme", method: trade, header: []string{"Basic YWRhOnB3"}, want: codes.Unauthenticated, reason: apierr.TokenMalformed},
		{name: "two headers", method: trade, header: []string{"Bearer " + user, "Bearer " + user}, want: codes.Unauthenticated, reason: apierr.TokenMalformed},
		{name: "role missing", method: upsert, header: []string{"Bearer " + user}, want: codes.PermissionDenied, reason: apierr.RoleRequired},
		{name: "role held", method: upsert, header: []string{"Bearer " + ingest}, want: codes.OK,
			wantP: &auth.Principal{Subject: "ada@example.com", Roles: []string{"ingest"}}},
		{name: "health is open", method: health, want: codes.OK},
		{name: "reflection is open", method: "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", want: codes.OK},
		{name: "method without rule", method: "/pgfleet.other.v1.Other/Do", header: []string{"Bearer " + ingest}, want: codes.PermissionDenied, reason: apierr.NoAccessRule},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, err := a.Authorize(incoming(tc.header...), tc.method)
			if got := status.Code(err); got != tc.want {
				t.Fatalf("Authorize = %v, want %v", err, tc.want)
			}
			if got := apierr.ReasonOf(err); got != tc.reason {
				t.Errorf("Authorize = %v, reason %q, want %q", err, got, tc.reason)
			}
			if err != nil {
				return
			}
			p, ok := auth.FromContext(ctx)
			if (tc.wantP != nil) != ok {
				t.Fatalf("principal %+v (ok %v), want %+v", p, ok, tc.wantP)
			}
			if ok {
				if diff := cmp.Diff(*tc.wantP, p); diff != "" {
					t.Errorf("principal (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestAuthorizer_rejectsTokens covers every way a token must fail: each is refused with
// Unauthenticated, never let through.
func TestAuthorizer_rejectsTokens(t *testing.T) {
	t.Parallel()
	a, err := auth.NewAuthorizer(cfg, policy)
	if err != nil {
		t.Fatal(err)
	}
	hs := func(mod func(jwt.MapClaims)) string {
		return sign(t, jwt.SigningMethodHS256, []byte(secret), claims(mod))
	}
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil))
	cases := map[string]string{
		"expired":                  hs(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }),
		"no expiry":                hs(func(c jwt.MapClaims) { delete(c, "exp") }),
		"not yet valid":            hs(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }),
		"issued in the future":     hs(func(c jwt.MapClaims) { c["iat"] = time.Now().Add(time.Hour).Unix() }),
		"issued beyond the leeway": hs(func(c jwt.MapClaims) { c["iat"] = time.Now().Add(2 * time.Minute).Unix() }),
		"valid beyond the leeway":  hs(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(2 * time.Minute).Unix() }),
		"wrong issuer":             hs(func(c jwt.MapClaims) { c["iss"] = "someone-else" }),
		"wrong audience":           hs(func(c jwt.MapClaims) { c["aud"] = "another-api" }),
		"no subject":               hs(func(c jwt.MapClaims) { delete(c, "sub") }),
		"wrong secret":             sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdefghij"), claims(nil)),
		"HS512":                    sign(t, jwt.SigningMethodHS512, []byte(secret), claims(nil)),
		"alg none":                 none,
		"garbage":                  "not-a-jwt",
		"tampered":                 tamper(t, hs(nil)),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := a.Authorize(incoming("Bearer "+tok), trade)
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("Authorize = %v, want Unauthenticated", err)
			}
		})
	}
}

// TestAuthorizer_clockSkew accepts tokens issued or valid from a little ahead of this host's
// clock, within the leeway: the issuer's clock may run ahead.
func TestAuthorizer_clockSkew(t *testing.T) {
	t.Parallel()
	a, err := auth.NewAuthorizer(cfg, policy)
	if err != nil {
		t.Fatal(err)
	}
	ahead := time.Now().Add(10 * time.Second).Unix()
	tok := sign(t, jwt.SigningMethodHS256, []byte(secret), claims(func(c jwt.MapClaims) { c["iat"], c["nbf"] = ahead, ahead }))
	if _, err := a.Authorize(incoming("Bearer "+tok), trade); err != nil {
		t.Errorf("token issued 10 s ahead: %v, want accepted", err)
	}
}

// tamper swaps the payload for one naming another subject, keeping the signature.
func tamper(t *testing.T, tok string) string {
	parts := strings.Split(tok, ".")
	other := strings.Split(sign(t, jwt.SigningMethodHS256, []byte("x"), claims(func(c jwt.MapClaims) { c["sub"] = "eve@example.com" })), ".")
	return parts[0] + "." + other[1] + "." + parts[2]
}

// TestAuthorizer_publicKey checks tokens of an external issuer by its Ed25519 public key, and
// refuses an HS256 token "signed" with that public key (the algorithm-confusion attack).
func TestAuthorizer_publicKey(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	path := filepath.Join(t.TempDir(), "issuer.pem")
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewAuthorizer(auth.Config{PublicKeyFile: path, Issuer: "pgfleet", Audience: "pgfleet"}, policy)
	if err != nil {
		t.Fatal(err)
	}
	good := sign(t, jwt.SigningMethodEdDSA, priv, claims(nil))
	if _, err := a.Authorize(incoming("Bearer "+good), trade); err != nil {
		t.Errorf("EdDSA token: %v", err)
	}
	confused := sign(t, jwt.SigningMethodHS256, pemBytes, claims(nil))
	if _, err := a.Authorize(incoming("Bearer "+confused), trade); status.Code(err) != codes.Unauthenticated {
		t.Errorf("HS256 token keyed with the public key: %v, want Unauthenticated", err)
	}
}

func TestAuthorizer_disabled(t *testing.T) {
	t.Parallel()
	a, err := auth.NewAuthorizer(auth.Config{Disabled: true}, policy)
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := a.Authorize(incoming(), upsert)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := auth.FromContext(ctx); !p.Admin() {
		t.Errorf("principal %+v, want an admin", p)
	}
	if _, err := a.Authorize(incoming(), "/pgfleet.other.v1.Other/Do"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("method without rule: %v, want PermissionDenied even with auth disabled", err)
	}
}

func TestConfig_Validate(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		cfg  auth.Config
		want string // part of the error; "" for none
	}{
		"secret":         {cfg: cfg},
		"disabled":       {cfg: auth.Config{Disabled: true}},
		"nothing":        {cfg: auth.Config{Issuer: "i", Audience: "a"}, want: "AUTH_DISABLED=true"},
		"both":           {cfg: auth.Config{Secret: secret, PublicKeyFile: "k.pem", Issuer: "i", Audience: "a"}, want: "not both"},
		"short secret":   {cfg: auth.Config{Secret: "short", Issuer: "i", Audience: "a"}, want: "at least 32 bytes"},
		"empty audience": {cfg: auth.Config{Secret: secret, Issuer: "i"}, want: "JWT_AUDIENCE"},
	}
	for name, tc := range cases {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Validate() = %v, want error containing %q", name, err, tc.want)
		}
	}
}

func TestPrincipal_Owns(t *testing.T) {
	t.Parallel()
	ada := auth.Principal{Subject: "ada@example.com"}
	admin := auth.Principal{Subject: "ops@example.com", Roles: []string{auth.RoleAdmin}}
	var nobody auth.Principal
	for _, tc := range []struct {
		p     auth.Principal
		owner string
		want  bool
	}{
		{ada, "ada@example.com", true},
		{ada, "Ada@Example.COM", true},
		{ada, "bob@example.com", false},
		{admin, "bob@example.com", true},
		{nobody, "", false},
		{nobody, "ada@example.com", false},
	} {
		if got := tc.p.Owns(tc.owner); got != tc.want {
			t.Errorf("%+v.Owns(%q) = %v, want %v", tc.p, tc.owner, got, tc.want)
		}
	}
}

// TestServiceCredentials checks that a service's minted token passes a peer's Authorizer
// with role service, and that a token file is read and re-read.
func TestServiceCredentials(t *testing.T) {
	t.Parallel()
	a, err := auth.NewAuthorizer(cfg, auth.Policy{"pgfleet.ops.v1.DatabaseMonitor": auth.Roles(auth.RoleService)})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := auth.ServiceCredentials(cfg, "portfolio")
	if err != nil {
		t.Fatal(err)
	}
	md, err := creds.GetRequestMetadata(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := a.Authorize(incoming(md["authorization"]), "/pgfleet.ops.v1.DatabaseMonitor/GetDatabaseStatus")
	if err != nil {
		t.Fatalf("service token refused: %v", err)
	}
	if p, _ := auth.FromContext(ctx); p.Subject != "portfolio" || !p.Has(auth.RoleService) {
		t.Errorf("principal %+v, want subject portfolio with role service", p)
	}

	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fileCreds, err := auth.ServiceCredentials(auth.Config{PublicKeyFile: "issuer.pem", ServiceTokenFile: path,
		Issuer: "pgfleet", Audience: "pgfleet"}, "portfolio")
	if err != nil {
		t.Fatal(err)
	}
	md, err = fileCreds.GetRequestMetadata(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := md["authorization"]; got != "Bearer file-token" {
		t.Errorf("authorization = %q, want the file's token", got)
	}

	if _, err := auth.ServiceCredentials(auth.Config{PublicKeyFile: "issuer.pem", Issuer: "i", Audience: "a"}, "portfolio"); err == nil {
		t.Error("public key without SERVICE_TOKEN_FILE: want an error")
	}
	if c, err := auth.ServiceCredentials(auth.Config{Disabled: true}, "portfolio"); c != nil || err != nil {
		t.Errorf("disabled: got %v, %v; want nil, nil", c, err)
	}
}
