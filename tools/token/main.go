// Command pgfleet-token prints a signed token for local runs and scripts: the fleet's
// services accept it when they share its JWT_SECRET, JWT_ISSUER and JWT_AUDIENCE, which it
// reads from the environment as they do.
//
//	JWT_SECRET=... pgfleet-token -sub ada@example.com
//	JWT_SECRET=... pgfleet-token -sub ops@example.com -roles admin -ttl 1h
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/pgfleet/pgfleet/pkg/auth"
)

func main() {
	sub := flag.String("sub", "", "subject: a user's email address, or a service's name (required)")
	roles := flag.String("roles", "", "comma-separated roles: admin, ingest, service")
	ttl := flag.Duration("ttl", 24*time.Hour, "how long the token is valid")
	flag.Parse()
	if err := run(*sub, *roles, *ttl); err != nil {
		fmt.Fprintln(os.Stderr, "pgfleet-token:", err)
		os.Exit(2)
	}
}

func run(sub, roles string, ttl time.Duration) error {
	if sub == "" {
		return fmt.Errorf("-sub is required")
	}
	var cfg auth.Config
	if err := envconfig.Process(context.Background(), &cfg); err != nil {
		return err
	}
	if cfg.Secret == "" {
		return fmt.Errorf("JWT_SECRET is not set: tokens can only be minted with the fleet's HS256 secret")
	}
	var list []string
	for r := range strings.SplitSeq(roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			list = append(list, r)
		}
	}
	tok, err := cfg.Token(sub, list, ttl)
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}
