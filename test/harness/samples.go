package harness

import "context"

// Samples is the image layout the policies' samples and examples name,
// pushed by PushSamples.
type Samples struct {
	// OtherARN is the profile "Other", created for the samples.
	OtherARN string
	// Digests of team/app by tag: "signed" (profile Team), "other"
	// (profile Other), "revoked" (Team, its signing job revoked),
	// "unsigned". platform/sidecar:v1 is pushed unsigned.
	Digests map[string]string
}

// PushSamples creates the profile Other and pushes the sample images
// (Samples), signed through the emulator.
func (s *Stack) PushSamples(ctx context.Context) (*Samples, error) {
	other, _, err := s.Emulator.CreateProfile("Other", 12)
	if err != nil {
		return nil, err
	}
	out := &Samples{OtherARN: other, Digests: map[string]string{}}
	for _, tag := range []string{"signed", "other", "revoked", "unsigned"} {
		_, desc, err := s.PushImage(ctx, "team/app", tag)
		if err != nil {
			return nil, err
		}
		out.Digests[tag] = desc.Digest.String()
		switch tag {
		case "signed":
			_, _, err = s.Sign(ctx, "team/app", desc, "")
		case "other":
			_, _, err = s.Sign(ctx, "team/app", desc, other)
		case "revoked":
			var job string
			if _, job, err = s.Sign(ctx, "team/app", desc, ""); err == nil {
				err = s.Emulator.RevokeJob(job)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if _, _, err := s.PushImage(ctx, "platform/sidecar", "v1"); err != nil {
		return nil, err
	}
	return out, nil
}
