package chart

import (
	"encoding/json"

	edunversioned "github.com/open-policy-agent/frameworks/constraint/pkg/apis/externaldata/unversioned"
	"github.com/open-policy-agent/frameworks/constraint/pkg/externaldata"
	mutationsunversioned "github.com/open-policy-agent/gatekeeper/v3/apis/mutations/unversioned"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/mutation/mutators/assign"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// toProvider decodes a rendered Provider into Gatekeeper's unversioned
// type (the fields of v1beta1 and the unversioned type are the same).
func toProvider(u *unstructured.Unstructured) (*edunversioned.Provider, error) {
	raw, err := u.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var p edunversioned.Provider
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// admitProvider runs the check Gatekeeper's webhook and controller run on
// a Provider (ProviderCache.Upsert: name, https URL, timeout, a caBundle
// that decodes to a certificate).
func admitProvider(u *unstructured.Unstructured) error {
	p, err := toProvider(u)
	if err != nil {
		return err
	}
	return externaldata.NewCache().Upsert(p)
}

// assignMutator builds Gatekeeper's mutator from a rendered Assign, as its
// mutation controller does (location syntax, applyTo bindings, external
// data settings).
func assignMutator(u *unstructured.Unstructured) (*assign.Mutator, error) {
	raw, err := u.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var a mutationsunversioned.Assign
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	return assign.MutatorForAssign(&a)
}
