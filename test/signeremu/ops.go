package signeremu

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/google/uuid"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/awssigner"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/sigkit"
)

// decodeBody reads a JSON request body into v; an empty body leaves v as is.
func decodeBody(r *http.Request, v any) *apiError {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return validation("request body is larger than %d bytes", tooBig.Limit)
		}
		return validation("read request body: %v", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return validation("request body is not valid JSON for this operation: %v", err)
	}
	return nil
}

// epochSeconds is a JSON number of seconds since the epoch, the body
// timestamp encoding of awsRestjson1.
type epochSeconds float64

func toEpoch(t time.Time) epochSeconds {
	return epochSeconds(float64(t.UnixMilli()) / 1000)
}

func (s epochSeconds) time() time.Time {
	sec, frac := math.Modf(float64(s))
	return time.Unix(int64(sec), int64(math.Round(frac*1e3))*int64(time.Millisecond)).UTC()
}

const versionAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// newVersion returns a random profile version: 10 characters of [a-zA-Z0-9].
func newVersion() string {
	b := make([]byte, 10)
	for i := range b {
		var c [1]byte
		for {
			_, _ = rand.Read(c[:])
			if int(c[0]) < 256-256%len(versionAlphabet) {
				break
			}
		}
		b[i] = versionAlphabet[int(c[0])%len(versionAlphabet)]
	}
	return string(b)
}

func (e *Emulator) checkOwner(owner string) *apiError {
	if owner != "" && owner != e.account {
		return &apiError{http.StatusForbidden, CodeAccessDenied, "signer emulator: account " + owner + " has not shared this resource with the caller"}
	}
	return nil
}

type putProfileInput struct {
	PlatformID *string `json:"platformId"`
	Validity   *struct {
		Value *int   `json:"value"`
		Type  string `json:"type"`
	} `json:"signatureValidityPeriod"`
}

type putProfileOutput struct {
	ARN               string `json:"arn"`
	ProfileVersion    string `json:"profileVersion"`
	ProfileVersionARN string `json:"profileVersionArn"`
}

func (e *Emulator) putSigningProfile(c *call) (any, *apiError) {
	name := c.r.PathValue("profileName")
	var in putProfileInput
	if err := decodeBody(c.r, &in); err != nil {
		return nil, err
	}
	if in.PlatformID == nil || *in.PlatformID == "" {
		return nil, validation("platformId is required")
	}
	v := validity{Value: DefaultValidityMonths, Type: "MONTHS"}
	if in.Validity != nil {
		if in.Validity.Value == nil || *in.Validity.Value <= 0 {
			return nil, validation("signatureValidityPeriod.value must be a positive integer")
		}
		switch in.Validity.Type {
		case "DAYS", "MONTHS", "YEARS":
		default:
			return nil, validation("signatureValidityPeriod.type %q is not one of DAYS, MONTHS, YEARS", in.Validity.Type)
		}
		v = validity{Value: *in.Validity.Value, Type: in.Validity.Type}
	}
	out, err := e.putProfile(c.region, name, *in.PlatformID, v)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// putProfile creates a profile or a new version of it.
func (e *Emulator) putProfile(region, name, platform string, v validity) (*putProfileOutput, *apiError) {
	if !profileNameRE.MatchString(name) {
		return nil, validation("profileName %q must match ^[a-zA-Z0-9_]{2,64}$", name)
	}
	if platform != PlatformID {
		return nil, validation("platformId %q is not supported; this emulator signs only with %s", platform, PlatformID)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	key := region + "/" + name
	p := e.profiles[key]
	if p == nil {
		p = &profile{name: name, region: region}
		e.profiles[key] = p
	}
	if p.revoked != nil {
		return nil, validation("signing profile %s is revoked and cannot be updated", name)
	}
	p.versions = append(p.versions, newVersion())
	p.validity = v
	base := e.profileARN(region, name)
	return &putProfileOutput{ARN: base, ProfileVersion: p.current(), ProfileVersionARN: base + "/" + p.current()}, nil
}

type revocationRecordJSON struct {
	EffectiveFrom epochSeconds `json:"revocationEffectiveFrom"`
	RevokedAt     epochSeconds `json:"revokedAt"`
	RevokedBy     string       `json:"revokedBy"`
}

type getProfileOutput struct {
	ProfileName         string                `json:"profileName"`
	ProfileVersion      string                `json:"profileVersion"`
	ProfileVersionARN   string                `json:"profileVersionArn"`
	ARN                 string                `json:"arn"`
	PlatformID          string                `json:"platformId"`
	PlatformDisplayName string                `json:"platformDisplayName"`
	Validity            validity              `json:"signatureValidityPeriod"`
	Status              string                `json:"status"`
	RevocationRecord    *revocationRecordJSON `json:"revocationRecord,omitempty"`
}

func (e *Emulator) getSigningProfile(c *call) (any, *apiError) {
	name := c.r.PathValue("profileName")
	if err := e.checkOwner(c.r.URL.Query().Get("profileOwner")); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.profiles[c.region+"/"+name]
	if p == nil {
		return nil, notFound("signing profile %s does not exist in %s", name, c.region)
	}
	base := e.profileARN(c.region, name)
	out := &getProfileOutput{
		ProfileName:         name,
		ProfileVersion:      p.current(),
		ProfileVersionARN:   base + "/" + p.current(),
		ARN:                 base,
		PlatformID:          PlatformID,
		PlatformDisplayName: PlatformDisplayName,
		Validity:            p.validity,
		Status:              "Active",
	}
	if p.revoked != nil {
		out.Status = "Revoked"
		out.RevocationRecord = &revocationRecordJSON{
			EffectiveFrom: toEpoch(p.revoked.effectiveFrom),
			RevokedAt:     toEpoch(p.revoked.revokedAt),
			RevokedBy:     p.revoked.revokedBy,
		}
	}
	return out, nil
}

type signPayloadInput struct {
	Payload       []byte `json:"payload"`
	PayloadFormat string `json:"payloadFormat"`
	ProfileName   string `json:"profileName"`
	ProfileOwner  string `json:"profileOwner"`
}

type signPayloadOutput struct {
	JobID     string            `json:"jobId"`
	JobOwner  string            `json:"jobOwner"`
	Metadata  map[string]string `json:"metadata"`
	Signature []byte            `json:"signature"`
}

// parsePayload checks that b is a Notary payload and returns its subject.
func parsePayload(b []byte) (ocispec.Descriptor, *apiError) {
	var d ocispec.Descriptor
	if len(b) == 0 || len(b) > MaxPayloadSize {
		return d, validation("payload must be 1 to %d bytes, got %d", MaxPayloadSize, len(b))
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return d, validation("payload is not a JSON object: %v", err)
	}
	raw, ok := top["targetArtifact"]
	if !ok || len(top) != 1 {
		return d, validation(`payload must be {"targetArtifact": <descriptor>} and nothing else`)
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return d, validation("payload targetArtifact is not an OCI descriptor: %v", err)
	}
	if d.MediaType == "" {
		return d, validation("payload targetArtifact has no mediaType")
	}
	if err := d.Digest.Validate(); err != nil {
		return d, validation("payload targetArtifact digest %q: %v", d.Digest, err)
	}
	if d.Size < 0 {
		return d, validation("payload targetArtifact size is negative")
	}
	return d, nil
}

func (e *Emulator) signPayload(c *call) (any, *apiError) {
	var in signPayloadInput
	if err := decodeBody(c.r, &in); err != nil {
		return nil, err
	}
	if in.PayloadFormat != PayloadFormat {
		return nil, validation("payloadFormat %q is not supported; want %s", in.PayloadFormat, PayloadFormat)
	}
	subject, aerr := parsePayload(in.Payload)
	if aerr != nil {
		return nil, aerr
	}
	if in.ProfileName == "" {
		return nil, validation("profileName is required")
	}
	if err := e.checkOwner(in.ProfileOwner); err != nil {
		return nil, err
	}

	e.mu.Lock()
	p := e.profiles[c.region+"/"+in.ProfileName]
	if p == nil {
		e.mu.Unlock()
		return nil, notFound("signing profile %s does not exist in %s", in.ProfileName, c.region)
	}
	if p.revoked != nil {
		e.mu.Unlock()
		return nil, validation("signing profile %s is revoked", in.ProfileName)
	}
	versionARN := e.profileARN(c.region, p.name) + "/" + p.current()
	v := p.validity
	e.mu.Unlock()

	id := uuid.NewString()
	job := &Job{
		ID:                id,
		ARN:               e.jobARN(c.region, id),
		ProfileVersionARN: versionARN,
		Region:            c.region,
		SigningTime:       e.now().UTC().Truncate(time.Second),
	}
	job.Expiry = v.after(job.SigningTime)
	env, err := e.ca.Sign(sigkit.Spec{
		Subject:           subject,
		Payload:           in.Payload,
		ProfileVersionARN: versionARN,
		JobARN:            job.ARN,
		SigningTime:       job.SigningTime,
		Expiry:            job.Expiry,
	})
	if err != nil {
		return nil, &apiError{http.StatusInternalServerError, CodeInternalServiceError, "signer emulator: sign: " + err.Error()}
	}
	e.mu.Lock()
	e.jobs[id] = job
	e.jobOrder = append(e.jobOrder, id)
	e.mu.Unlock()
	return &signPayloadOutput{JobID: id, JobOwner: e.account, Metadata: map[string]string{}, Signature: env.Raw}, nil
}

type revokeSignatureInput struct {
	Reason   string `json:"reason"`
	JobOwner string `json:"jobOwner"`
}

func (e *Emulator) revokeSignature(c *call) (any, *apiError) {
	id := c.r.PathValue("jobId")
	var in revokeSignatureInput
	if err := decodeBody(c.r, &in); err != nil {
		return nil, err
	}
	if in.Reason == "" {
		return nil, validation("reason is required")
	}
	if err := e.checkOwner(in.JobOwner); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	j := e.jobs[id]
	if j == nil || j.Region != c.region {
		return nil, notFound("signing job %s does not exist in %s", id, c.region)
	}
	e.revokedJobs[j.ARN] = true
	return nil, nil
}

type revokeProfileInput struct {
	EffectiveTime  *epochSeconds `json:"effectiveTime"`
	ProfileVersion string        `json:"profileVersion"`
	Reason         string        `json:"reason"`
}

func (e *Emulator) revokeSigningProfile(c *call) (any, *apiError) {
	name := c.r.PathValue("profileName")
	var in revokeProfileInput
	if err := decodeBody(c.r, &in); err != nil {
		return nil, err
	}
	switch {
	case in.EffectiveTime == nil:
		return nil, validation("effectiveTime is required")
	case in.ProfileVersion == "":
		return nil, validation("profileVersion is required")
	case in.Reason == "":
		return nil, validation("reason is required")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.profiles[c.region+"/"+name]
	if p == nil {
		return nil, notFound("signing profile %s does not exist in %s", name, c.region)
	}
	if !slices.Contains(p.versions, in.ProfileVersion) {
		return nil, notFound("signing profile %s has no version %s", name, in.ProfileVersion)
	}
	e.revokeVersionLocked(e.profileARN(c.region, name)+"/"+in.ProfileVersion, in.EffectiveTime.time())
	return nil, nil
}

// revokeVersionLocked records a profile-version revocation. The first
// revocation of a version wins; revocations are irreversible.
func (e *Emulator) revokeVersionLocked(versionARN string, effective time.Time) {
	if _, done := e.revokedVersions[versionARN]; !done {
		e.revokedVersions[versionARN] = effective.UTC()
	}
	pa, err := awssigner.ParseProfileARN(versionARN)
	if err != nil || pa.Account != e.account || pa.Partition != partitionOf(pa.Region) {
		return
	}
	if p := e.profiles[pa.Region+"/"+pa.Name]; p != nil && p.revoked == nil && slices.Contains(p.versions, pa.Version) {
		p.revoked = &revocationRecord{
			effectiveFrom: effective.UTC(),
			revokedAt:     e.now().UTC(),
			revokedBy:     "arn:" + pa.Partition + ":iam::" + e.account + ":root",
		}
	}
}

// certHashLen is the length of one hex SHA-384; a certificateHashes entry
// is two of them (the certificate's, then its issuer's).
const certHashLen = 96

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// parseJobARN checks arn:<partition>:signer:<region>:<account>:/signing-jobs/<id>.
func parseJobARN(s string) (arn.ARN, error) {
	a, err := arn.Parse(s)
	if err != nil {
		return a, err
	}
	id, ok := strings.CutPrefix(a.Resource, "/signing-jobs/")
	if a.Service != "signer" || !ok || id == "" || strings.Contains(id, "/") {
		return a, errors.New("not a signing-job ARN")
	}
	return a, nil
}

// parseVersionARN checks a signing-profile version ARN.
func parseVersionARN(s string) (awssigner.ProfileARN, error) {
	pa, err := awssigner.ParseProfileARN(s)
	if err != nil {
		return pa, err
	}
	if pa.Version == "" {
		return pa, errors.New("the ARN names no profile version")
	}
	return pa, nil
}

type revocationOutput struct {
	RevokedEntities []string `json:"revokedEntities"`
}

func (e *Emulator) getRevocationStatus(c *call) (any, *apiError) {
	q := c.r.URL.Query()
	var missing []string
	for _, k := range []string{"certificateHashes", "jobArn", "platformId", "profileVersionArn", "signatureTimestamp"} {
		if q.Get(k) == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, validation("missing required parameter(s): %s", strings.Join(missing, ", "))
	}
	if p := q.Get("platformId"); p != PlatformID {
		return nil, validation("platformId %q is not supported; want %s", p, PlatformID)
	}
	ts, err := time.Parse(time.RFC3339Nano, q.Get("signatureTimestamp"))
	if err != nil {
		return nil, validation("signatureTimestamp %q is not a date-time: %v", q.Get("signatureTimestamp"), err)
	}
	jobARN := q.Get("jobArn")
	ja, err := parseJobARN(jobARN)
	if err != nil {
		return nil, validation("jobArn %q is invalid: %v", jobARN, err)
	}
	versionARN := q.Get("profileVersionArn")
	pa, err := parseVersionARN(versionARN)
	if err != nil {
		return nil, validation("profileVersionArn %q is invalid: %v", versionARN, err)
	}
	for _, p := range []string{ja.Partition, pa.Partition} {
		if p != c.partition {
			return nil, validation("cross-partition request: signature ARNs are in partition %s but region %s is in %s", p, c.region, c.partition)
		}
	}
	hashes := q["certificateHashes"]
	for _, h := range hashes {
		if len(h) != 2*certHashLen || !isLowerHex(h) {
			return nil, validation("certificateHashes entry %q is not %d lowercase hex characters", h, 2*certHashLen)
		}
	}

	out := &revocationOutput{RevokedEntities: []string{}}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.revokedJobs[jobARN] {
		out.RevokedEntities = append(out.RevokedEntities, jobARN)
	}
	if eff, ok := e.revokedVersions[versionARN]; ok && !eff.After(ts) {
		out.RevokedEntities = append(out.RevokedEntities, versionARN)
	}
	for _, h := range hashes {
		if e.revokedCerts[h[:certHashLen]] && !slices.Contains(out.RevokedEntities, h) {
			out.RevokedEntities = append(out.RevokedEntities, h)
		}
	}
	return out, nil
}
