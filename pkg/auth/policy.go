package auth

import (
	"context"
	"fmt"
	"strings"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// Access is who may call a method: anyone (Public), any caller with a valid token
// (Authenticated), or a caller holding one of some roles (Roles).
type Access struct {
	public bool
	roles  []string
}

var (
	// Public methods need no token. A token sent anyway must still be valid.
	Public = Access{public: true}
	// Authenticated methods need a valid token; whose data it may touch is the handler's to check.
	Authenticated = Access{}
)

// Roles is access for callers holding any of roles.
func Roles(roles ...string) Access { return Access{roles: roles} }

func (a Access) String() string {
	switch {
	case a.public:
		return "public"
	case len(a.roles) == 0:
		return "authenticated"
	}
	return "roles " + strings.Join(a.roles, ", ")
}

// Policy maps gRPC methods to their access. A key is a full method
// ("/pgfleet.stock.v1.StockService/GetStock") or a service ("pgfleet.stock.v1.StockService"),
// which covers that service's methods not named on their own. A method the policy does not
// cover is refused, so a new RPC is closed until someone decides who may call it.
type Policy map[string]Access

// open are the operators' services: probes and grpcurl must work without a token.
var open = map[string]bool{
	"grpc.health.v1.Health":                    true,
	"grpc.reflection.v1.ServerReflection":      true,
	"grpc.reflection.v1alpha.ServerReflection": true,
}

func (p Policy) access(fullMethod string) (Access, bool) {
	if a, ok := p[fullMethod]; ok {
		return a, true
	}
	service, _, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if open[service] {
		return Public, true
	}
	a, ok := p[service]
	return a, ok
}

// Authorizer checks each call against a Policy. Its Authorize method is what
// server.Options.Authorize takes.
type Authorizer struct {
	disabled bool
	verifier *verifier
	policy   Policy
}

// NewAuthorizer returns an Authorizer for cfg and policy; with cfg.Disabled every call runs
// as an admin.
func NewAuthorizer(cfg Config, policy Policy) (*Authorizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Authorizer{disabled: cfg.Disabled, policy: policy}
	if cfg.Disabled {
		return a, nil
	}
	v, err := newVerifier(cfg)
	if err != nil {
		return nil, err
	}
	a.verifier = v
	return a, nil
}

// Authorize returns ctx carrying the caller's Principal (see FromContext), or the status
// error to answer with: Unauthenticated for a missing or bad token, PermissionDenied for a
// caller without the role the method needs.
func (a *Authorizer) Authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	access, ok := a.policy.access(fullMethod)
	if !ok {
		return nil, apierr.Newf(apierr.NoAccessRule, map[string]string{"method": fullMethod}, "%s: no access rule", fullMethod)
	}
	if a.disabled {
		return NewContext(ctx, Principal{Subject: "anonymous", Roles: []string{RoleAdmin}}), nil
	}
	token, err := bearer(ctx)
	if err != nil {
		return nil, err
	}
	if token == "" {
		if access.public {
			return ctx, nil
		}
		return nil, apierr.New(apierr.TokenMissing, "missing bearer token", nil)
	}
	p, err := a.verifier.verify(token)
	if err != nil {
		return nil, apierr.New(apierr.TokenInvalid, fmt.Sprintf("invalid token: %v", err), nil)
	}
	if len(access.roles) > 0 && !p.Has(access.roles...) {
		return nil, apierr.Newf(apierr.RoleRequired, map[string]string{"method": fullMethod, "roles": strings.Join(access.roles, ",")},
			"%s needs role %s", fullMethod, strings.Join(access.roles, " or "))
	}
	return NewContext(ctx, p), nil
}
