package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

const (
	// serviceTokenTTL is the life of a minted service token; it is renewed a minute before it
	// ends, so a call never carries one about to expire.
	serviceTokenTTL   = 10 * time.Minute
	serviceTokenRenew = time.Minute
	// tokenFileRecheck is how often a SERVICE_TOKEN_FILE is checked for a rotated token.
	tokenFileRecheck = 30 * time.Second
)

// ServiceCredentials returns the credentials a service attaches to its calls to other
// services: a token with subject service and role "service", minted with JWT_SECRET, or read
// from SERVICE_TOKEN_FILE when the fleet verifies an external issuer's tokens. It returns nil
// when auth is disabled: pass nothing then.
func ServiceCredentials(cfg Config, service string) (credentials.PerRPCCredentials, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case cfg.Disabled:
		return nil, nil
	case cfg.ServiceTokenFile != "":
		c := &tokenCreds{next: func() (string, time.Time, error) {
			data, err := os.ReadFile(cfg.ServiceTokenFile)
			if err != nil {
				return "", time.Time{}, fmt.Errorf("SERVICE_TOKEN_FILE: %w", err)
			}
			return strings.TrimSpace(string(data)), time.Now().Add(tokenFileRecheck), nil
		}}
		if _, err := c.token(); err != nil { // a missing file fails at start, not on the first call
			return nil, err
		}
		return c, nil
	case cfg.Secret != "":
		return &tokenCreds{next: func() (string, time.Time, error) {
			tok, err := cfg.Token(service, []string{RoleService}, serviceTokenTTL)
			return tok, time.Now().Add(serviceTokenTTL - serviceTokenRenew), err
		}}, nil
	}
	return nil, errors.New("auth: with JWT_PUBLIC_KEY_FILE, a service that calls others needs SERVICE_TOKEN_FILE")
}

// tokenCreds caches a token until its renewal time.
type tokenCreds struct {
	next func() (token string, renew time.Time, err error)

	mu    sync.Mutex
	tok   string
	renew time.Time
}

func (c *tokenCreds) token() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok != "" && time.Now().Before(c.renew) {
		return c.tok, nil
	}
	tok, renew, err := c.next()
	if err != nil {
		return "", err
	}
	c.tok, c.renew = tok, renew
	return tok, nil
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c *tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	tok, err := c.token()
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials. Plaintext stays allowed
// so local runs need no certificates; production turns TLS on (see the README).
func (c *tokenCreds) RequireTransportSecurity() bool { return false }

// Bearer returns credentials that send token as is: a user's token in tools and tests.
func Bearer(token string) credentials.PerRPCCredentials {
	return &tokenCreds{next: func() (string, time.Time, error) { return token, time.Now().Add(time.Hour), nil }}
}
