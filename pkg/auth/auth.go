// Package auth is who may call what: JWT bearer tokens checked by a gRPC interceptor in every
// service, so that no caller, the gateway included, can get around it.
//
// A token names its caller in "sub" (for people: their email address, which is how the
// portfolio service knows its users and the interview service its candidates) and grants
// roles in a "roles" claim. Each service declares a Policy: which methods are public, which
// need any valid token, which need a role. Whose data a caller may touch (their own
// portfolios, their own sessions) is the service's to check, with the Principal this package
// puts in the call's context.
package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/metadata"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// Roles a token may grant. A token without roles is an ordinary user.
const (
	RoleAdmin   = "admin"   // anything, on anyone's data
	RoleIngest  = "ingest"  // writes market data and the question bank
	RoleService = "service" // another pgfleet service: operational reads (DatabaseMonitor)
)

// minSecretLen is RFC 7518's floor for an HS256 key: at least as long as the hash (256 bits).
const minSecretLen = 32

// leeway absorbs clock skew between the token's issuer and this host.
const leeway = 30 * time.Second

// Config is the authentication environment; every service and the gateway read the same one.
type Config struct {
	// Disabled turns checks off: every call runs as an admin. For trusted local setups only;
	// it must be asked for explicitly, so a service never runs open by mistake.
	Disabled bool `env:"AUTH_DISABLED, default=false" help:"true: no token checks, every call runs as admin (trusted local setups only)"`
	// Secret is the HS256 key shared by the token issuer and the services (at least 32 bytes).
	Secret string `env:"JWT_SECRET" json:"-" help:"HS256 key shared with the token issuer, at least 32 bytes (this or JWT_PUBLIC_KEY_FILE, unless AUTH_DISABLED)" secret:"true"` // never logged with the config
	// PublicKeyFile is a PEM public key (RSA, ECDSA or Ed25519) of an external issuer; tokens
	// are then checked with it, and this fleet cannot mint its own (see ServiceTokenFile).
	PublicKeyFile string `env:"JWT_PUBLIC_KEY_FILE" help:"PEM public key (RSA, ECDSA, Ed25519) of an external token issuer"`
	// Issuer and Audience must equal the token's "iss" and one of its "aud".
	Issuer   string `env:"JWT_ISSUER, default=pgfleet" help:"required \"iss\" of every token"`
	Audience string `env:"JWT_AUDIENCE, default=pgfleet" help:"required \"aud\" of every token"`
	// ServiceTokenFile holds the token this service sends to its peers when it cannot mint
	// one (PublicKeyFile set). It is re-read as it changes, so a rotated token is picked up.
	ServiceTokenFile string `env:"SERVICE_TOKEN_FILE" help:"file holding the token this service sends its peers when it cannot mint one (public-key mode); re-read when it changes"`
}

// Validate reports a configuration that cannot work.
func (cfg Config) Validate() error {
	switch {
	case cfg.Disabled:
		return nil
	case cfg.Secret == "" && cfg.PublicKeyFile == "":
		return errors.New("auth: set JWT_SECRET or JWT_PUBLIC_KEY_FILE, or AUTH_DISABLED=true for a trusted local setup")
	case cfg.Secret != "" && cfg.PublicKeyFile != "":
		return errors.New("auth: set one of JWT_SECRET and JWT_PUBLIC_KEY_FILE, not both")
	case cfg.Secret != "" && len(cfg.Secret) < minSecretLen:
		return fmt.Errorf("auth: JWT_SECRET must be at least %d bytes", minSecretLen)
	case cfg.Issuer == "" || cfg.Audience == "":
		return errors.New("auth: JWT_ISSUER and JWT_AUDIENCE must not be empty")
	}
	return nil
}

// Principal is the authenticated caller of a call.
type Principal struct {
	Subject string   // the token's "sub": a user's email address, or a service's name
	Roles   []string // the token's "roles"
}

// Admin reports whether p may act on anyone's data.
func (p Principal) Admin() bool { return p.Has(RoleAdmin) }

// Has reports whether p holds any of roles.
func (p Principal) Has(roles ...string) bool {
	for _, r := range roles {
		if slices.Contains(p.Roles, r) {
			return true
		}
	}
	return false
}

// Owns reports whether p may act on data that belongs to owner (an email address): its own,
// compared without regard to case as emails are, or anyone's for an admin.
func (p Principal) Owns(owner string) bool {
	return p.Admin() || (p.Subject != "" && strings.EqualFold(p.Subject, owner))
}

type principalKey struct{}

// FromContext returns the caller of the call whose context ctx is. ok is false on a public
// method called without a token.
func FromContext(ctx context.Context) (p Principal, ok bool) {
	p, ok = ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Caller is FromContext for handlers of methods that need a token: the policy admits no
// call without one there, and a zero Principal (no interceptor, a wiring bug) owns nothing,
// so a missing one fails closed.
func Caller(ctx context.Context) Principal {
	p, _ := FromContext(ctx)
	return p
}

// NewContext returns ctx carrying p, as the interceptor does; for tests of handlers.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// claims are the token's claims pgfleet reads.
type claims struct {
	jwt.RegisteredClaims
	Roles []string `json:"roles,omitempty"`
}

// Token returns an HS256 token for subject with roles, valid for ttl, signed with the
// configured secret: the tokens `make run` prints, and the tokens of tests.
func (cfg Config) Token(subject string, roles []string, ttl time.Duration) (string, error) {
	if cfg.Secret == "" {
		return "", errors.New("auth: minting a token needs JWT_SECRET")
	}
	now := time.Now()
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    cfg.Issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{cfg.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Roles: roles,
	}).SignedString([]byte(cfg.Secret))
}

// verifier checks tokens: signature with the configured key and only its algorithms (so an
// HS256 token signed with a public key, or "none", is refused), expiry required, issuer and
// audience, and neither "iat" nor "nbf" later than now plus the leeway: a token issued in the
// future is a forged or mis-clocked one, and would otherwise outlive the issuer's intent.
type verifier struct {
	parser *jwt.Parser
	key    any

	cache  sync.Map // token string -> verified
	cached atomic.Int64
}

func newVerifier(cfg Config) (*verifier, error) {
	var key any
	var methods []string
	if cfg.Secret != "" {
		key, methods = []byte(cfg.Secret), []string{jwt.SigningMethodHS256.Alg()}
	} else {
		var err error
		if key, methods, err = readPublicKey(cfg.PublicKeyFile); err != nil {
			return nil, err
		}
	}
	return &verifier{
		key: key,
		parser: jwt.NewParser(
			jwt.WithValidMethods(methods),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(), // nbf is always checked; iat only when asked
			jwt.WithLeeway(leeway),
		),
	}, nil
}

// readPublicKey reads a PEM public key and the algorithms that may use it.
func readPublicKey(path string) (any, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: JWT_PUBLIC_KEY_FILE: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, nil, fmt.Errorf("auth: JWT_PUBLIC_KEY_FILE %s: no PEM block", path)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		if k, err2 := x509.ParsePKCS1PublicKey(block.Bytes); err2 == nil {
			key, err = k, nil
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("auth: JWT_PUBLIC_KEY_FILE %s: %w", path, err)
	}
	methods, err := algorithmsFor(key)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: JWT_PUBLIC_KEY_FILE %s: %w", path, err)
	}
	return key, methods, nil
}

func algorithmsFor(key crypto.PublicKey) ([]string, error) {
	switch key.(type) {
	case *rsa.PublicKey:
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case *ecdsa.PublicKey:
		return []string{"ES256", "ES384", "ES512"}, nil
	case ed25519.PublicKey:
		return []string{"EdDSA"}, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", key)
}

// verify returns the principal of a bearer token. A token verified before is answered from
// the cache until it expires: checking a signature and decoding the claims costs more than
// the point read many calls make, and a client sends the same token for minutes.
func (v *verifier) verify(token string) (Principal, error) {
	if e, ok := v.cache.Load(token); ok {
		if e := e.(verified); time.Now().Before(e.until) {
			return e.p, nil
		}
		v.cache.Delete(token)
		v.cached.Add(-1)
	}
	var c claims
	if _, err := v.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.key, nil }); err != nil {
		return Principal{}, err
	}
	if c.Subject == "" {
		return Principal{}, errors.New("token has no subject")
	}
	p := Principal{Subject: c.Subject, Roles: c.Roles}
	if v.cached.Load() >= maxCachedTokens {
		v.cache.Clear() // crude, but bounded: a flood of distinct tokens cannot grow it
		v.cached.Store(0)
	}
	if _, loaded := v.cache.LoadOrStore(token, verified{p: p, until: c.ExpiresAt.Add(leeway)}); !loaded {
		v.cached.Add(1)
	}
	return p, nil
}

// maxCachedTokens bounds the cache of verified tokens (a few hundred bytes each).
const maxCachedTokens = 10000

// verified is a cached verification: the principal, and until when the token is accepted.
type verified struct {
	p     Principal
	until time.Time
}

// bearer returns the token of the call's "authorization" metadata, or "" when there is none.
func bearer(ctx context.Context) (string, error) {
	values := metadata.ValueFromIncomingContext(ctx, "authorization")
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", apierr.New(apierr.TokenMalformed, "more than one authorization header", nil)
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(token) == "" {
		return "", apierr.New(apierr.TokenMalformed, `authorization must be "Bearer <token>"`, nil)
	}
	return strings.TrimSpace(token), nil
}
