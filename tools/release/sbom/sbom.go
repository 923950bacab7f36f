// Package sbom describes a Go binary as an SPDX 2.3 JSON document from its
// embedded build information (debug/buildinfo): the main module, every
// dependency module with its version and go.sum hash, the Go toolchain,
// and the build settings (GOOS, GOARCH, GOFIPS140, …). Nothing is
// guessed: what the linker recorded is what the document says.
package sbom

import (
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// MediaType is the SBOM's media type (and artifactType of its referrer).
const MediaType = "application/spdx+json"

// Subject names what the document describes.
type Subject struct {
	// Name of the package, e.g. "awssigner".
	Name string
	// Version of the product.
	Version string
	// Namespace is a URI unique to this document (the pushed reference).
	Namespace string
	// Created is the document's time (the commit time).
	Created time.Time
	// Source and Revision are the repository and commit.
	Source, Revision string
}

// Document is the subset of SPDX 2.3 this package writes.
type Document struct {
	SPDXVersion       string         `json:"spdxVersion"`
	DataLicense       string         `json:"dataLicense"`
	SPDXID            string         `json:"SPDXID"`
	Name              string         `json:"name"`
	DocumentNamespace string         `json:"documentNamespace"`
	CreationInfo      CreationInfo   `json:"creationInfo"`
	DocumentDescribes []string       `json:"documentDescribes"`
	Packages          []Package      `json:"packages"`
	Relationships     []Relationship `json:"relationships"`
}

// CreationInfo says who made the document and when.
type CreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
	Comment  string   `json:"comment,omitempty"`
}

// Package is one SPDX package.
type Package struct {
	SPDXID           string        `json:"SPDXID"`
	Name             string        `json:"name"`
	VersionInfo      string        `json:"versionInfo,omitempty"`
	DownloadLocation string        `json:"downloadLocation"`
	FilesAnalyzed    bool          `json:"filesAnalyzed"`
	Checksums        []Checksum    `json:"checksums,omitempty"`
	ExternalRefs     []ExternalRef `json:"externalRefs,omitempty"`
	Comment          string        `json:"comment,omitempty"`
	LicenseConcluded string        `json:"licenseConcluded"`
	LicenseDeclared  string        `json:"licenseDeclared"`
	CopyrightText    string        `json:"copyrightText"`
}

// Checksum is an SPDX checksum.
type Checksum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"checksumValue"`
}

// ExternalRef is a package URL.
type ExternalRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

// Relationship links two SPDX elements.
type Relationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// FromBinary reads the build information of the Go binary data and returns
// its SPDX document.
func FromBinary(data []byte, s Subject) (*Document, error) {
	info, err := buildinfo.Read(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("read the Go build information: %w (is it a Go binary built with module support?)", err)
	}
	sum := sha256.Sum256(data)
	var settings []string
	for _, kv := range info.Settings {
		settings = append(settings, kv.Key+"="+kv.Value)
	}
	root := Package{
		SPDXID:           "SPDXRef-Package-" + spdxID(s.Name),
		Name:             s.Name,
		VersionInfo:      s.Version,
		DownloadLocation: orNoAssertion(s.Source),
		Checksums:        []Checksum{{Algorithm: "SHA256", Value: fmt.Sprintf("%x", sum)}},
		ExternalRefs: []ExternalRef{{Category: "PACKAGE-MANAGER", Type: "purl",
			Locator: "pkg:golang/" + info.Main.Path + "@" + versionOr(s.Version) + "?type=module"}},
		Comment:          fmt.Sprintf("Go binary %s, built with %s from %s at revision %s; build settings: %s", info.Path, info.GoVersion, info.Main.Path, s.Revision, strings.Join(settings, " ")),
		LicenseConcluded: "NOASSERTION",
		LicenseDeclared:  "NOASSERTION",
		CopyrightText:    "NOASSERTION",
	}
	doc := &Document{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              s.Name + "-" + versionOr(s.Version),
		DocumentNamespace: s.Namespace,
		CreationInfo: CreationInfo{
			Created:  s.Created.UTC().Format(time.RFC3339),
			Creators: []string{"Tool: ratify-aws-signer-release"},
			Comment:  "From the Go build information embedded in the binary (debug/buildinfo).",
		},
		DocumentDescribes: []string{root.SPDXID},
		Packages:          []Package{root},
	}
	doc.Relationships = append(doc.Relationships, Relationship{"SPDXRef-DOCUMENT", "DESCRIBES", root.SPDXID})
	toolchain := Package{
		SPDXID: "SPDXRef-Package-go-toolchain", Name: "go", VersionInfo: strings.TrimPrefix(info.GoVersion, "go"),
		DownloadLocation: "https://go.dev/dl/", LicenseConcluded: "NOASSERTION", LicenseDeclared: "NOASSERTION", CopyrightText: "NOASSERTION",
		ExternalRefs: []ExternalRef{{Category: "PACKAGE-MANAGER", Type: "purl", Locator: "pkg:golang/stdlib@" + info.GoVersion}},
	}
	doc.Packages = append(doc.Packages, toolchain)
	doc.Relationships = append(doc.Relationships, Relationship{toolchain.SPDXID, "BUILD_TOOL_OF", root.SPDXID})
	deps := append([]*debugModule(nil), modulesOf(info)...)
	sort.Slice(deps, func(i, j int) bool { return deps[i].path < deps[j].path })
	seen := map[string]bool{}
	for _, m := range deps {
		id := "SPDXRef-Package-" + spdxID(m.path+"-"+m.version)
		if seen[id] {
			continue
		}
		seen[id] = true
		p := Package{
			SPDXID: id, Name: m.path, VersionInfo: m.version,
			DownloadLocation: "https://proxy.golang.org/" + escapePath(m.path) + "/@v/" + m.version + ".zip",
			ExternalRefs:     []ExternalRef{{Category: "PACKAGE-MANAGER", Type: "purl", Locator: "pkg:golang/" + m.path + "@" + m.version}},
			LicenseConcluded: "NOASSERTION", LicenseDeclared: "NOASSERTION", CopyrightText: "NOASSERTION",
		}
		if m.sum != "" {
			p.Comment = "go.sum hash " + m.sum
		}
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, Relationship{root.SPDXID, "DEPENDS_ON", id})
	}
	return doc, nil
}

type debugModule struct{ path, version, sum string }

func modulesOf(info *buildinfo.BuildInfo) []*debugModule {
	var out []*debugModule
	for _, d := range info.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		out = append(out, &debugModule{path: m.Path, version: m.Version, sum: m.Sum})
	}
	return out
}

// JSON is the document as indented JSON (deterministic: fixed field order,
// sorted packages).
func (d *Document) JSON() ([]byte, error) {
	return json.MarshalIndent(d, "", "  ")
}

var notIDChar = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

func spdxID(s string) string { return notIDChar.ReplaceAllString(s, "-") }

func orNoAssertion(s string) string {
	if s == "" {
		return "NOASSERTION"
	}
	return s
}

func versionOr(v string) string {
	if v == "" {
		return "devel"
	}
	return v
}

// escapePath is the module proxy's case encoding (an upper-case letter
// becomes "!" and its lower case).
func escapePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
