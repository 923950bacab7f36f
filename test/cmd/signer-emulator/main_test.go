package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	rootPath, readyPath := filepath.Join(dir, "root.pem"), filepath.Join(dir, "ready")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-region", "eu-west-1", "-root-pem", rootPath, "-ready-file", readyPath}, &stdout, &stderr)
	}()

	var url string
	deadline := time.Now().Add(5 * time.Second)
	for {
		if b, err := os.ReadFile(readyPath); err == nil {
			url = string(b)
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v (%s)", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no ready file")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("ready file holds %q", url)
	}
	resp, err := http.Get(url + "/_emulator/root.pem")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	written, err := os.ReadFile(rootPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(written, []byte("-----BEGIN CERTIFICATE-----")) || !bytes.Equal(served, written) {
		t.Errorf("root PEM file and /_emulator/root.pem differ or are not PEM")
	}
	// The -region flag is the default region of requests without SigV4.
	req, _ := http.NewRequest(http.MethodPut, url+"/signing-profiles/cmd_test", strings.NewReader(`{"platformId":"Notation-OCI-SHA384-ECDSA"}`))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "arn:aws:signer:eu-west-1:111122223333:/signing-profiles/cmd_test") {
		t.Errorf("PutSigningProfile answered %s", body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop on cancellation")
	}
	if want := "signer-emulator listening on " + url + "\n"; stdout.String() != want {
		t.Errorf("stdout = %q, want %q", stdout.String(), want)
	}
}

func TestRunBadArguments(t *testing.T) {
	for _, args := range [][]string{{"-nope"}, {"extra"}, {"-region", "Not A Region"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out, &out); err == nil {
			t.Errorf("run %q succeeded", args)
		}
	}
}
