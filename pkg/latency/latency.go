// Package latency holds the fleet's one set of latency histogram buckets, shared by the
// gRPC server, the gateway and outbound calls, so that their quantiles can be compared and
// summed bucket for bucket.
package latency

// Buckets are upper bounds in seconds, from 100 µs to 10 s: a GetStock answers in about
// 0.2 ms, so the old lowest bucket (5 ms) put nearly every call into one bucket; 10 s is
// past every deadline the fleet sets for a unary call.
var Buckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
