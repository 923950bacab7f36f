package awssigner

import (
	"strings"
	"testing"
)

const (
	sigARN     = "arn:aws:signer:us-west-2:111122223333:/signing-profiles/MyProfile/AbCdEf1234"
	profileARN = "arn:aws:signer:us-west-2:111122223333:/signing-profiles/MyProfile"
)

func TestMatchIdentity(t *testing.T) {
	for _, tc := range []struct {
		name       string
		identities []string
		want       string
	}{
		{"profile ARN matches any version", []string{profileARN}, profileARN},
		{"profile ARN case-insensitive", []string{"arn:aws:signer:US-WEST-2:111122223333:/signing-profiles/MYPROFILE"}, "arn:aws:signer:US-WEST-2:111122223333:/signing-profiles/MYPROFILE"},
		{"upper-case ARN prefix is not an ARN", []string{strings.ToUpper(profileARN)}, ""},
		{"profile name case-insensitive", []string{strings.Replace(profileARN, "MyProfile", "myprofile", 1)}, strings.Replace(profileARN, "MyProfile", "myprofile", 1)},
		{"profile-version ARN exact", []string{sigARN}, sigARN},
		{"profile-version ARN case-insensitive", []string{strings.ToLower(sigARN)}, strings.ToLower(sigARN)},
		{"other version", []string{profileARN + "/ZZZZZZZZZZ"}, ""},
		{"other profile", []string{"arn:aws:signer:us-west-2:111122223333:/signing-profiles/Other"}, ""},
		{"other account", []string{"arn:aws:signer:us-west-2:999999999999:/signing-profiles/MyProfile"}, ""},
		{"other region", []string{"arn:aws:signer:us-east-1:111122223333:/signing-profiles/MyProfile"}, ""},
		{"other partition", []string{"arn:aws-us-gov:signer:us-west-2:111122223333:/signing-profiles/MyProfile"}, ""},
		{"prefix is no wildcard", []string{"arn:aws:signer:us-west-2:111122223333:/signing-profiles/My"}, ""},
		{"singular signing-profile ignored", []string{"arn:aws:signer:us-west-2:111122223333:/signing-profile/MyProfile"}, ""},
		{"job ARN ignored", []string{"arn:aws:signer:us-west-2:111122223333:/signing-jobs/x"}, ""},
		{"x509 subject ignored", []string{"x509.subject:CN=AWS Signer", profileARN}, profileARN},
		{"non-signer service ignored", []string{"arn:aws:iam::111122223333:/signing-profiles/MyProfile"}, ""},
		{"five segments never match", []string{sigARN + "/extra"}, ""},
		{"empty list", nil, ""},
		{"first match wins", []string{sigARN, profileARN}, sigARN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := MatchIdentity(sigARN, tc.identities)
			if got != tc.want || ok != (tc.want != "") {
				t.Fatalf("MatchIdentity = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
	if _, ok := MatchIdentity("no-slash", []string{profileARN}); ok {
		t.Fatal("a malformed signed ARN matched")
	}
}

func TestParseProfileARN(t *testing.T) {
	p, err := ParseProfileARN(sigARN)
	if err != nil || p.Unversioned() != profileARN || p.Version != "AbCdEf1234" || p.String() != sigARN || p.Account != "111122223333" {
		t.Fatalf("%+v %v", p, err)
	}
	for _, bad := range []string{"", "arn:aws:iam::1:/signing-profiles/x", "arn:aws:signer:us-west-2:1:/signing-profiles/", "arn:aws:signer:us-west-2:1:/signing-profiles/a/b/c", "arn:aws:signer:us-west-2:1:/signing-jobs/x"} {
		if _, err := ParseProfileARN(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if got := SignerIdentities([]string{"x509.subject:CN=x", profileARN, sigARN, "*"}); len(got) != 2 {
		t.Errorf("SignerIdentities = %v", got)
	}
}

func TestRegionAndEndpointRules(t *testing.T) {
	for _, r := range []string{"us-west-2", "us-gov-west-1", "cn-north-1", "ap-southeast-4"} {
		if !ValidRegion(r) {
			t.Errorf("%s refused", r)
		}
	}
	for _, r := range []string{"Oregon", "x", "us-west", "US-WEST-2", "us--2", "usa-west-2", "us_west_2", "u-west-2", "us-west-2a", ""} {
		if ValidRegion(r) || CheckRegion(r) == nil {
			t.Errorf("%q accepted", r)
		}
	}
	if CheckEndpoint("https://signer.us-west-2.amazonaws.com") != nil || CheckEndpoint("http://127.0.0.1:9") != nil || CheckEndpoint("ftp://x") == nil || CheckEndpoint("signer") == nil {
		t.Error("endpoint rules")
	}
	for _, tc := range []struct{ arn, override, want string }{
		{sigARN, "", "us-west-2"},
		{sigARN, "eu-west-1", "eu-west-1"},
		{"arn:aws-us-gov:signer:us-gov-west-1:1:/signing-profiles/P/v", "", "us-gov-west-1"},
	} {
		if got, err := RegionFor(tc.arn, tc.override); err != nil || got != tc.want {
			t.Errorf("RegionFor(%s, %q) = %q, %v", tc.arn, tc.override, got, err)
		}
	}
	for _, bad := range []string{"arn:aws-iso:signer:us-iso-east-1:1:/signing-profiles/P/v", "arn:aws:signer::1:/signing-profiles/P/v", "nope"} {
		if _, err := RegionFor(bad, ""); err == nil {
			t.Errorf("RegionFor(%q) accepted", bad)
		}
	}
}
