package registryhttp

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestRedirectsAreBounded(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Redirect(w, r, "/again", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	_, err := New(Options{}).Get(srv.URL + "/v2/")
	if err == nil || !strings.Contains(err.Error(), "stopped after 5 redirects") {
		t.Fatalf("loop: %v", err)
	}
	if got := n.Load(); got != MaxRedirects+1 {
		t.Fatalf("%d requests, want %d", got, MaxRedirects+1)
	}
}
