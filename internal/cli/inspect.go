package cli

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/notaryproject/notation-core-go/signature"
	// Envelope formats ParseEnvelope reads (already linked by notation-go).
	_ "github.com/notaryproject/notation-core-go/signature/cose"
	_ "github.com/notaryproject/notation-core-go/signature/jws"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/awssigner"
	sigread "github.com/ratify-aws-signer/ratify-aws-signer/internal/signature"
)

type inspectReport struct {
	Image      string            `json:"image"`
	Reference  string            `json:"reference"`
	MediaType  string            `json:"mediaType"`
	Size       int64             `json:"size"`
	Signatures []inspectedSigRep `json:"signatures"`
	NotRead    int               `json:"notRead,omitempty"`
}

// inspectedSigRep is one signature as read, without any trust decision.
type inspectedSigRep struct {
	Digest      string            `json:"signatureDigest"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Error says why the signature could not be read or parsed; the other
	// fields are then partly empty.
	Error string `json:"error,omitempty"`

	Envelope *envelopeInfo `json:"envelope,omitempty"`

	SignatureAlgorithm       string      `json:"signatureAlgorithm,omitempty"`
	SigningScheme            string      `json:"signingScheme,omitempty"`
	SigningTime              *time.Time  `json:"signingTime,omitempty"`
	Expiry                   *time.Time  `json:"expiry,omitempty"`
	SigningProfileARN        string      `json:"signingProfileArn,omitempty"`
	SigningProfileVersionARN string      `json:"signingProfileVersionArn,omitempty"`
	SigningJobARN            string      `json:"signingJobArn,omitempty"`
	VerificationPlugin       string      `json:"verificationPlugin,omitempty"`
	SigningAgent             string      `json:"signingAgent,omitempty"`
	Timestamped              bool        `json:"timestamped,omitempty"`
	Attributes               []attribute `json:"signedAttributes,omitempty"`
	Payload                  *payload    `json:"payload,omitempty"`
	CertificateChain         []certInfo  `json:"certificateChain,omitempty"`
}

type envelopeInfo struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int    `json:"size"`
}

type attribute struct {
	Key      string `json:"key"`
	Critical bool   `json:"critical"`
	Value    any    `json:"value"`
}

type payload struct {
	ContentType string `json:"contentType"`
	// TargetArtifact is the descriptor the signature claims to sign.
	TargetArtifact *ocispec.Descriptor `json:"targetArtifact,omitempty"`
	// MatchesImage says whether it is the inspected image's digest.
	MatchesImage bool `json:"matchesImage"`
}

type certInfo struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Serial    string    `json:"serialNumber"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	SHA256    string    `json:"sha256"`
	IsCA      bool      `json:"isCA"`
}

func (a *app) inspectCommand() *cobra.Command {
	var f registryFlags
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "inspect <image>",
		Short: "Show an image's Notation signatures, their attributes and certificate chains",
		Long: strings.TrimSpace(`
Show the Notation signatures of an image: for each, the AWS Signer signing
profile and job, signing time, expiry, signed attributes, the payload's
target and the certificate chain (subject, issuer, validity, SHA-256).

Nothing is verified: the envelopes are parsed, not trusted. Use
"awssigner verify" for a trust decision.`),
		Example: `  awssigner inspect 111122223333.dkr.ecr.us-west-2.amazonaws.com/app:v1
  awssigner inspect localhost:5000/app:v1 --plain-http -o json`,
		Args: exactArgs(1, "one image reference"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			return a.runInspect(ctx, cmd, args[0], f)
		},
	}
	cmd.Flags().BoolVar(&f.plainHTTP, "plain-http", false, "talk HTTP, not HTTPS, to the registry (local registries)")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "time limit for the whole command (0: none)")
	return cmd
}

func (a *app) runInspect(ctx context.Context, cmd *cobra.Command, reference string, f registryFlags) error {
	s, err := a.readSubject(ctx, cmd, reference, f)
	if err != nil {
		return err
	}
	rep := &inspectReport{Image: reference, Reference: s.Reference(), MediaType: s.Desc.MediaType, Size: s.Desc.Size, Signatures: []inspectedSigRep{}, NotRead: s.Skipped}
	var readErr error
	for _, d := range s.Signatures {
		// The subject is compared here, not by Read, so that a signature
		// of another image is still shown.
		sig, err := sigread.Read(ctx, s.Image.Repo, d, "")
		if err != nil {
			rep.Signatures = append(rep.Signatures, inspectedSigRep{Digest: d.Digest.String(), Annotations: d.Annotations, Error: err.Error()})
			if errors.Is(err, sigread.ErrUnavailable) && readErr == nil {
				readErr = failErr("could not read signature %s of %s: %v", d.Digest, s.Reference(), err)
			}
			continue
		}
		r := inspectSignature(s.Desc, sig.Envelope, sig.EnvelopeDescriptor.MediaType)
		r.Digest, r.Annotations = d.Digest.String(), sig.Annotations
		if sig.Subject != nil && sig.Subject.Digest != s.Desc.Digest {
			r.Error = fmt.Sprintf("signature manifest %s refers to %s, not to the image %s", d.Digest, sig.Subject.Digest, s.Desc.Digest)
		}
		rep.Signatures = append(rep.Signatures, r)
	}
	if a.json() {
		a.printJSON(rep)
	} else {
		rep.print(a.stdout)
	}
	if readErr != nil {
		return &exitError{code: ExitFailed, err: readErr, silent: a.json()}
	}
	return nil
}

// inspectSignature parses an envelope without verifying it.
func inspectSignature(subject ocispec.Descriptor, envelope []byte, mediaType string) inspectedSigRep {
	r := inspectedSigRep{Envelope: &envelopeInfo{MediaType: mediaType, Digest: digest.FromBytes(envelope).String(), Size: len(envelope)}}
	env, err := signature.ParseEnvelope(mediaType, envelope)
	if err != nil {
		r.Error = fmt.Sprintf("envelope is not a Notation signature envelope: %v", err)
		return r
	}
	content, err := env.Content()
	if err != nil {
		r.Error = fmt.Sprintf("envelope content cannot be read: %v", err)
		return r
	}
	si := content.SignerInfo
	facts := awssigner.FactsOf(&si)
	r.SignatureAlgorithm = algorithmName(si.SignatureAlgorithm)
	r.SigningScheme = facts.SigningScheme
	if t := facts.SigningTime; !t.IsZero() {
		r.SigningTime = &t
	}
	if t := facts.Expiry; !t.IsZero() {
		r.Expiry = &t
	}
	r.SigningProfileVersionARN, r.SigningJobARN, r.SigningProfileARN = facts.SigningProfileVersionARN, facts.SigningJobARN, facts.SigningProfileARN
	r.VerificationPlugin = facts.VerificationPlugin
	r.SigningAgent = si.UnsignedAttributes.SigningAgent
	r.Timestamped = len(si.UnsignedAttributes.TimestampSignature) > 0
	for _, at := range si.SignedAttributes.ExtendedAttributes {
		key := fmt.Sprint(at.Key)
		r.Attributes = append(r.Attributes, attribute{Key: key, Critical: at.Critical, Value: at.Value})
	}
	pl := &payload{ContentType: content.Payload.ContentType}
	var body struct {
		TargetArtifact *ocispec.Descriptor `json:"targetArtifact"`
	}
	if json.Unmarshal(content.Payload.Content, &body) == nil && body.TargetArtifact != nil {
		pl.TargetArtifact = body.TargetArtifact
		pl.MatchesImage = body.TargetArtifact.Digest == subject.Digest
	}
	r.Payload = pl
	for _, c := range si.CertificateChain {
		r.CertificateChain = append(r.CertificateChain, describeCert(c))
	}
	return r
}

func describeCert(c *x509.Certificate) certInfo {
	sum := sha256.Sum256(c.Raw)
	serial := ""
	if c.SerialNumber != nil {
		serial = c.SerialNumber.Text(16)
	}
	return certInfo{
		Subject:   c.Subject.String(),
		Issuer:    c.Issuer.String(),
		Serial:    serial,
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
		SHA256:    hex.EncodeToString(sum[:]),
		IsCA:      c.IsCA,
	}
}

func algorithmName(a signature.Algorithm) string {
	switch a {
	case signature.AlgorithmPS256:
		return "RSASSA-PSS-SHA-256"
	case signature.AlgorithmPS384:
		return "RSASSA-PSS-SHA-384"
	case signature.AlgorithmPS512:
		return "RSASSA-PSS-SHA-512"
	case signature.AlgorithmES256:
		return "ECDSA-SHA-256"
	case signature.AlgorithmES384:
		return "ECDSA-SHA-384"
	case signature.AlgorithmES512:
		return "ECDSA-SHA-512"
	}
	return ""
}

// tree writes an indented tree with box-drawing branches.
type tree struct{ w io.Writer }

type node struct {
	text     string
	children []*node
}

func (n *node) add(text string) *node {
	c := &node{text: text}
	n.children = append(n.children, c)
	return c
}

func (n *node) addf(format string, args ...any) *node { return n.add(fmt.Sprintf(format, args...)) }

// addIf adds "label: value" when value is not empty.
func (n *node) addIf(label, value string) {
	if value != "" {
		n.add(label + ": " + value)
	}
}

func (t tree) print(n *node) {
	fmt.Fprintln(t.w, n.text)
	t.children(n, "")
}

func (t tree) children(n *node, prefix string) {
	for i, c := range n.children {
		branch, next := "├── ", "│   "
		if i == len(n.children)-1 {
			branch, next = "└── ", "    "
		}
		fmt.Fprintln(t.w, prefix+branch+c.text)
		t.children(c, prefix+next)
	}
}

func (r *inspectReport) print(w io.Writer) {
	root := &node{text: r.Reference}
	if r.Image != r.Reference {
		root.text += "  (" + r.Image + ")"
	}
	if len(r.Signatures) == 0 {
		root.add("no Notation signature")
	}
	for _, s := range r.Signatures {
		s.tree(root.addf("signature %s", s.Digest))
	}
	if r.NotRead > 0 {
		root.addf("%d more signature(s) not read (limit %d)", r.NotRead, maxSignatures)
	}
	tree{w}.print(root)
}

func (s *inspectedSigRep) tree(n *node) {
	if s.Error != "" {
		n.add("ERROR: " + s.Error)
	}
	n.addIf("signing profile", s.SigningProfileVersionARN)
	n.addIf("signing job", s.SigningJobARN)
	if s.SigningTime != nil {
		n.addIf("signing time", formatTime(*s.SigningTime))
	}
	if s.Expiry != nil {
		n.addIf("expiry", formatTime(*s.Expiry))
	}
	n.addIf("signing scheme", s.SigningScheme)
	n.addIf("signature algorithm", s.SignatureAlgorithm)
	n.addIf("verification plugin", s.VerificationPlugin)
	n.addIf("signing agent", s.SigningAgent)
	if s.Timestamped {
		n.add("timestamped: yes")
	}
	if e := s.Envelope; e != nil {
		n.addf("envelope: %s, %d bytes, %s", e.MediaType, e.Size, e.Digest)
	}
	if p := s.Payload; p != nil && p.TargetArtifact != nil {
		match := "the inspected image"
		if !p.MatchesImage {
			match = "NOT the inspected image"
		}
		n.addf("signed artifact: %s %s (%d bytes), %s", p.TargetArtifact.MediaType, p.TargetArtifact.Digest, p.TargetArtifact.Size, match)
	}
	if len(s.Attributes) > 0 {
		an := n.add("signed attributes")
		for _, at := range s.Attributes {
			crit := ""
			if at.Critical {
				crit = " (critical)"
			}
			an.addf("%s%s: %v", at.Key, crit, at.Value)
		}
	}
	if len(s.Annotations) > 0 {
		an := n.add("manifest annotations")
		keys := make([]string, 0, len(s.Annotations))
		for k := range s.Annotations {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			an.addf("%s: %s", k, s.Annotations[k])
		}
	}
	if len(s.CertificateChain) > 0 {
		cn := n.add("certificate chain")
		for i, c := range s.CertificateChain {
			role := "intermediate"
			switch {
			case i == 0:
				role = "signing certificate"
			case i == len(s.CertificateChain)-1:
				role = "root"
			}
			cc := cn.addf("[%d] %s: %s", i, role, c.Subject)
			cc.add("issuer: " + c.Issuer)
			cc.addf("validity: %s to %s", formatTime(c.NotBefore), formatTime(c.NotAfter))
			cc.add("serial: " + c.Serial)
			cc.add("sha256: " + c.SHA256)
		}
	}
}
