package config

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzDecode: any input either decodes to a document that resolves the
// same after a JSON round trip, or fails with a *FieldError (or Errors of
// them); it never panics.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(validJSON))
	f.Add([]byte(validYAML))
	f.Add([]byte(`{"trustPolicyDoc":null}`))
	f.Add([]byte(`{"revocation":{"timeout":"1h"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := DecodeDocument(data)
		if err == nil {
			_, err = doc.Resolve()
		}
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error is %T, want *FieldError: %v", err, err)
			}
			return
		}
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(b); err != nil {
			t.Fatalf("decoded config does not decode again: %v\n%s", err, b)
		}
	})
}
