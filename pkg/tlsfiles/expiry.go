package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"

	"github.com/prometheus/client_golang/prometheus"
)

var expiryDesc = prometheus.NewDesc(
	"pgfleet_tls_certificate_expiry_timestamp_seconds",
	"When the certificate the listener serves now expires (its NotAfter), in Unix seconds.",
	[]string{"listener"}, nil,
)

// expiry reports one listener's certificate, read at scrape time through the config's
// GetCertificate (as Config builds it), so that a renewed certificate shows as soon as the
// next handshake would serve it.
type expiry struct {
	listener string
	config   *tls.Config
}

// NewExpiryCollector returns pgfleet_tls_certificate_expiry_timestamp_seconds{listener} for
// the certificate config serves, e.g. listener "grpc" or "https". A config from Config, or
// one with Certificates, works. While no certificate can be read the series is absent, not
// zero, so that an alert on "expires soon" does not fire on a read error.
func NewExpiryCollector(listener string, config *tls.Config) prometheus.Collector {
	return &expiry{listener: listener, config: config}
}

func (e *expiry) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (e *expiry) Collect(ch chan<- prometheus.Metric) {
	leaf := e.leaf()
	if leaf == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue,
		float64(leaf.NotAfter.Unix()), e.listener)
}

// leaf returns the serving certificate's leaf, or nil if there is none.
func (e *expiry) leaf() *x509.Certificate {
	var cert *tls.Certificate
	switch {
	case e.config.GetCertificate != nil:
		c, err := e.config.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			return nil
		}
		cert = c
	case len(e.config.Certificates) > 0:
		cert = &e.config.Certificates[0]
	}
	if cert == nil || len(cert.Certificate) == 0 {
		return nil
	}
	if cert.Leaf != nil { // tls.LoadX509KeyPair fills it in
		return cert.Leaf
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}
