package client

import (
	"testing"
	"time"
)

func TestServiceConfig(t *testing.T) {
	t.Parallel()
	const policy = `"retryPolicy":{"maxAttempts":3,"initialBackoff":"0.05s","maxBackoff":"1s",` +
		`"backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}`
	const lb = `{"loadBalancingConfig":[{"round_robin":{}}]`
	cases := []struct {
		name    string
		cfg     Config
		want    string
		wantErr bool
	}{
		{
			name: "every method",
			cfg:  Config{MaxAttempts: 3},
			want: lb + `,"methodConfig":[{"name":[{}],` + policy + `}]}`,
		},
		{
			name: "listed services and methods",
			cfg: Config{MaxAttempts: 3, RetryMethods: []string{
				"pgfleet.stock.v1.StockService", " /pgfleet.ops.v1.DatabaseMonitor/GetDatabaseStatus"}},
			want: lb + `,"methodConfig":[{"name":[{"service":"pgfleet.stock.v1.StockService"},` +
				`{"service":"pgfleet.ops.v1.DatabaseMonitor","method":"GetDatabaseStatus"}],` + policy + `}]}`,
		},
		{name: "retries off", cfg: Config{MaxAttempts: 1}, want: lb + `}`},
		{name: "empty entry", cfg: Config{MaxAttempts: 3, RetryMethods: []string{""}}, wantErr: true},
		{name: "too many slashes", cfg: Config{MaxAttempts: 3, RetryMethods: []string{"a.B/C/D"}}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := serviceConfig(tc.cfg)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestSeconds(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		50 * time.Millisecond:   "0.05s",
		time.Second:             "1s",
		1500 * time.Microsecond: "0.0015s",
	} {
		if got := seconds(d); got != want {
			t.Errorf("seconds(%v) = %q, want %q", d, got, want)
		}
	}
}
