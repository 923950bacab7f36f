package kyverno

import (
	"context"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

// BenchmarkReviewSignedPod: one signed Pod (tag) through both webhooks'
// handlers, two real calls to serve (revocation asked of the emulator each
// time: the tests' serve keeps no revocation answer).
func BenchmarkReviewSignedPod(b *testing.B) {
	pod := workload("Pod", "bench", nsDefault, map[string]string{"app": env.stack.Registry.Host + "/team/app:signed"}, nil)
	for b.Loop() {
		v, err := env.admission.Review(context.Background(), admissionv1.Create, pod, nil)
		if err != nil || !v.Allowed {
			b.Fatalf("%v %s", err, v.Message)
		}
	}
}

// BenchmarkReviewExcludedPod: the same Pod in an excluded namespace (no
// rule applies, no call).
func BenchmarkReviewExcludedPod(b *testing.B) {
	pod := workload("Pod", "bench", nsSystem, map[string]string{"app": env.stack.Registry.Host + "/team/app:unsigned"}, nil)
	for b.Loop() {
		v, err := env.admission.Review(context.Background(), admissionv1.Create, pod, nil)
		if err != nil || !v.Allowed {
			b.Fatalf("%v %s", err, v.Message)
		}
	}
}
