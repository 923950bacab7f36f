package signeremu

import (
	"bytes"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Fault changes how the emulator answers an operation. Latency delays the
// answer; Hang withholds it until the client gives up or the emulator is
// closed; a Status or Code replaces the answer with that error (a missing
// one of the two is derived from the other) and Message is sent as given,
// empty included. A Fault with only Latency delays a normal answer.
type Fault struct {
	Latency time.Duration
	Status  int
	Code    string
	Message string
	// Times is how many requests the fault applies to; 0 means until cleared.
	Times int
	Hang  bool
}

// SetFault installs f for operation op (an Op* name, or AllOps for every
// operation without a fault of its own), replacing any earlier fault for op.
func (e *Emulator) SetFault(op string, f Fault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults[op] = &f
}

// ClearFault removes the fault of one operation (or of AllOps).
func (e *Emulator) ClearFault(op string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.faults, op)
}

// ClearFaults removes every fault.
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.faults)
}

// Faults returns the installed faults by operation, Times showing what is
// left of each.
func (e *Emulator) Faults() map[string]Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]Fault, len(e.faults))
	for k, f := range e.faults {
		out[k] = *f
	}
	return out
}

// begin counts one request of op and returns the fault that applies to it.
func (e *Emulator) begin(op string) *Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.counts[op]++
	key := op
	f := e.faults[key]
	if f == nil {
		key = AllOps
		f = e.faults[key]
	}
	if f == nil {
		return nil
	}
	applied := *f
	if f.Times > 0 {
		f.Times--
		if f.Times == 0 {
			delete(e.faults, key)
		}
	}
	return &applied
}

// Count returns how many requests of op the emulator received, failed and
// faulted ones included.
func (e *Emulator) Count(op string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts[op]
}

// Counts returns a copy of every operation's request count.
func (e *Emulator) Counts() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.counts)
}

// ResetCounts sets every request count back to zero.
func (e *Emulator) ResetCounts() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.counts)
}

// RevokeJob marks a signing job revoked. The ARN need not name a job this
// emulator ran, so envelopes built directly with sigkit can be revoked too.
func (e *Emulator) RevokeJob(jobARN string) error {
	if _, err := parseJobARN(jobARN); err != nil {
		return fmt.Errorf("signeremu: job ARN %q: %w", jobARN, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.revokedJobs[jobARN] = true
	return nil
}

// RevokeProfileVersion revokes a profile version from effective on (zero:
// now): signatures it made at or after that time are reported revoked. If
// the version belongs to one of the emulator's profiles, that profile
// becomes Revoked and can no longer sign.
func (e *Emulator) RevokeProfileVersion(versionARN string, effective time.Time) error {
	if err := checkVersionARN(versionARN); err != nil {
		return err
	}
	if effective.IsZero() {
		effective = e.now()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.revokeVersionLocked(versionARN, effective)
	return nil
}

// RevokeCertificate marks a certificate revoked: every certificateHashes
// entry that starts with its hash is reported.
func (e *Emulator) RevokeCertificate(cert *x509.Certificate) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.revokedCerts[CertificateHash(cert)] = true
}

// RevokeCertificateHash is RevokeCertificate given the certificate's hash
// (96 hex characters, see CertificateHash).
func (e *Emulator) RevokeCertificateHash(hash string) error {
	hash = strings.ToLower(strings.TrimSpace(hash))
	if len(hash) != certHashLen || !isLowerHex(hash) {
		return fmt.Errorf("signeremu: certificate hash %q is not %d hex characters", hash, certHashLen)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.revokedCerts[hash] = true
	return nil
}

// CertificateHash is the hex SHA-384 of a certificate's TBSCertificate, the
// unit AWS Signer revokes certificates by.
func CertificateHash(cert *x509.Certificate) string {
	sum := sha512.Sum384(cert.RawTBSCertificate)
	return hex.EncodeToString(sum[:])
}

// CertificateHashes builds GetRevocationStatus's certificateHashes for a
// chain given leaf first: per certificate its hash followed by its
// issuer's (the last certificate is taken as its own issuer), sorted.
func CertificateHashes(chain []*x509.Certificate) []string {
	out := make([]string, len(chain))
	for i, c := range chain {
		parent := c
		if i+1 < len(chain) {
			parent = chain[i+1]
		}
		out[i] = CertificateHash(c) + CertificateHash(parent)
	}
	slices.Sort(out)
	return out
}

// CreateProfile creates a profile (or a new version of it) in the default
// region, as PutSigningProfile would, with a validity of months (<= 0: the
// default). It returns the profile ARN and the new version's ARN.
func (e *Emulator) CreateProfile(name string, months int) (profileARN, versionARN string, err error) {
	return e.CreateProfileIn(e.region, name, months)
}

// CreateProfileIn is CreateProfile in the given region.
func (e *Emulator) CreateProfileIn(region, name string, months int) (profileARN, versionARN string, err error) {
	if !regionRE.MatchString(region) {
		return "", "", fmt.Errorf("signeremu: invalid region %q", region)
	}
	if months <= 0 {
		months = DefaultValidityMonths
	}
	out, aerr := e.putProfile(region, name, PlatformID, validity{Value: months, Type: "MONTHS"})
	if aerr != nil {
		return "", "", fmt.Errorf("signeremu: %w", aerr)
	}
	return out.ARN, out.ProfileVersionARN, nil
}

// Jobs returns the signing jobs performed so far, oldest first.
func (e *Emulator) Jobs() []Job {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Job, 0, len(e.jobOrder))
	for _, id := range e.jobOrder {
		out = append(out, *e.jobs[id])
	}
	return out
}

func checkVersionARN(s string) error {
	if _, err := parseVersionARN(s); err != nil {
		return fmt.Errorf("signeremu: profile version ARN %q: %w", s, err)
	}
	return nil
}

// HTTP control endpoints.

// FaultJSON is the JSON form of a Fault used by /_emulator/faults; Latency
// is a Go duration string such as "250ms".
type FaultJSON struct {
	Op      string `json:"op,omitempty"`
	Latency string `json:"latency,omitempty"`
	Status  int    `json:"status,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	Times   int    `json:"times,omitempty"`
	Hang    bool   `json:"hang,omitempty"`
}

func (e *Emulator) controlRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /_emulator/root.pem", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(e.ca.RootPEM())
	})
	m.HandleFunc("GET /_emulator/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"counts": e.Counts()})
	})
	m.HandleFunc("POST /_emulator/stats/reset", func(w http.ResponseWriter, r *http.Request) {
		e.ResetCounts()
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("GET /_emulator/faults", func(w http.ResponseWriter, r *http.Request) {
		out := map[string]FaultJSON{}
		for op, f := range e.Faults() {
			fj := FaultJSON{Status: f.Status, Code: f.Code, Message: f.Message, Times: f.Times, Hang: f.Hang}
			if f.Latency > 0 {
				fj.Latency = f.Latency.String()
			}
			out[op] = fj
		}
		writeJSON(w, http.StatusOK, map[string]any{"faults": out})
	})
	m.HandleFunc("POST /_emulator/faults", func(w http.ResponseWriter, r *http.Request) {
		var fj FaultJSON
		if !readControl(w, r, &fj) {
			return
		}
		if fj.Op == "" {
			controlError(w, http.StatusBadRequest, `"op" is required (an operation name or "*")`)
			return
		}
		f := Fault{Status: fj.Status, Code: fj.Code, Message: fj.Message, Times: fj.Times, Hang: fj.Hang}
		if fj.Latency != "" {
			d, err := time.ParseDuration(fj.Latency)
			if err != nil || d < 0 {
				controlError(w, http.StatusBadRequest, fmt.Sprintf("latency %q is not a duration like 250ms", fj.Latency))
				return
			}
			f.Latency = d
		}
		if f.Times < 0 {
			controlError(w, http.StatusBadRequest, "times must not be negative")
			return
		}
		e.SetFault(fj.Op, f)
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("DELETE /_emulator/faults", func(w http.ResponseWriter, r *http.Request) {
		if op := r.URL.Query().Get("op"); op != "" {
			e.ClearFault(op)
		} else {
			e.ClearFaults()
		}
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /_emulator/revoke/job", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			JobARN string `json:"jobArn"`
			JobID  string `json:"jobId"`
		}
		if !readControl(w, r, &in) {
			return
		}
		if in.JobARN == "" && in.JobID != "" {
			e.mu.Lock()
			if j := e.jobs[in.JobID]; j != nil {
				in.JobARN = j.ARN
			}
			e.mu.Unlock()
			if in.JobARN == "" {
				controlError(w, http.StatusNotFound, "no job "+in.JobID)
				return
			}
		}
		if err := e.RevokeJob(in.JobARN); err != nil {
			controlError(w, http.StatusBadRequest, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /_emulator/revoke/profile-version", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			ProfileVersionARN string    `json:"profileVersionArn"`
			EffectiveTime     time.Time `json:"effectiveTime"`
		}
		if !readControl(w, r, &in) {
			return
		}
		if err := e.RevokeProfileVersion(in.ProfileVersionARN, in.EffectiveTime); err != nil {
			controlError(w, http.StatusBadRequest, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /_emulator/revoke/certificate", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			PEM  string `json:"pem"`
			Hash string `json:"hash"`
		}
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		if strings.HasPrefix(strings.TrimSpace(string(body)), "-----BEGIN") {
			in.PEM = string(body)
		} else if err := json.Unmarshal(body, &in); err != nil {
			controlError(w, http.StatusBadRequest, "body is neither a PEM certificate nor JSON {\"pem\"|\"hash\"}: "+err.Error())
			return
		}
		switch {
		case in.PEM != "":
			n := 0
			rest := []byte(in.PEM)
			for {
				var b *pem.Block
				b, rest = pem.Decode(rest)
				if b == nil {
					break
				}
				cert, err := x509.ParseCertificate(b.Bytes)
				if err != nil {
					controlError(w, http.StatusBadRequest, "parse certificate: "+err.Error())
					return
				}
				e.RevokeCertificate(cert)
				n++
			}
			if n == 0 {
				controlError(w, http.StatusBadRequest, "no PEM certificate in body")
				return
			}
		case in.Hash != "":
			if err := e.RevokeCertificateHash(in.Hash); err != nil {
				controlError(w, http.StatusBadRequest, err.Error())
				return
			}
		default:
			controlError(w, http.StatusBadRequest, `give "pem" or "hash"`)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /_emulator/profiles", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Name   string `json:"name"`
			Region string `json:"region"`
			Months int    `json:"months"`
		}
		if !readControl(w, r, &in) {
			return
		}
		if in.Region == "" {
			in.Region = e.region
		}
		arn, version, err := e.CreateProfileIn(in.Region, in.Name, in.Months)
		if err != nil {
			controlError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"arn": arn, "profileVersionArn": version})
	})
	m.HandleFunc("GET /_emulator/jobs", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"jobs": e.Jobs()})
	})
	m.HandleFunc("/_emulator/", func(w http.ResponseWriter, r *http.Request) {
		controlError(w, http.StatusNotFound, fmt.Sprintf("no emulator control %s %s", r.Method, r.URL.Path))
	})
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		controlError(w, http.StatusBadRequest, "read body: "+err.Error())
		return nil, false
	}
	return b, true
}

func readControl(w http.ResponseWriter, r *http.Request, v any) bool {
	body, ok := readBody(w, r)
	if !ok {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		controlError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

func controlError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
