package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FieldError is a configuration error at a field path such as
// "trustPolicyDoc.trustPolicies[0].signatureVerification.level".
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

func fieldErr(path, format string, args ...any) error {
	return &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Errors are every problem validation found, in document order;
// errors.As finds the first *FieldError.
type Errors []*FieldError

func (e Errors) Error() string {
	msgs := make([]string, len(e))
	for i, fe := range e {
		msgs[i] = fe.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap returns each *FieldError.
func (e Errors) Unwrap() []error {
	out := make([]error, len(e))
	for i, fe := range e {
		out[i] = fe
	}
	return out
}

func (e *Errors) add(path, format string, args ...any) {
	*e = append(*e, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// err returns the single *FieldError, or all of them.
func (e Errors) err() error {
	if len(e) == 1 {
		return e[0]
	}
	return e
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var (
	durationType = reflect.TypeOf(Duration(0))
	rawType      = reflect.TypeOf(json.RawMessage(nil))
)

// decodeValue stores the generic JSON value in (from json.Decoder with
// UseNumber) into out, refusing unknown keys and wrong types with the path.
func decodeValue(path string, in any, out reflect.Value) error {
	t := out.Type()
	if t == rawType {
		b, err := json.Marshal(in)
		if err != nil {
			return fieldErr(path, "%v", err)
		}
		out.SetBytes(b)
		return nil
	}
	if t == durationType {
		s, ok := in.(string)
		if !ok {
			return fieldErr(path, "want a duration string such as \"2s\" or \"5m\", got %s", describe(in))
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fieldErr(path, "invalid duration %q (want e.g. \"500ms\", \"2s\", \"5m\")", s)
		}
		out.SetInt(int64(d))
		return nil
	}
	if in == nil {
		// JSON null leaves the zero value, as encoding/json does.
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		v := reflect.New(t.Elem())
		if err := decodeValue(path, in, v.Elem()); err != nil {
			return err
		}
		out.Set(v)
	case reflect.String:
		s, ok := in.(string)
		if !ok {
			return fieldErr(path, "want a string, got %s", describe(in))
		}
		out.SetString(s)
	case reflect.Bool:
		b, ok := in.(bool)
		if !ok {
			return fieldErr(path, "want true or false, got %s", describe(in))
		}
		out.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, ok := in.(json.Number)
		if !ok {
			return fieldErr(path, "want a number, got %s", describe(in))
		}
		i, err := n.Int64()
		if err != nil {
			return fieldErr(path, "want a whole number, got %s", n)
		}
		out.SetInt(i)
	case reflect.Slice:
		list, ok := in.([]any)
		if !ok {
			return fieldErr(path, "want a list, got %s", describe(in))
		}
		s := reflect.MakeSlice(t, len(list), len(list))
		for i, item := range list {
			if err := decodeValue(path+"["+strconv.Itoa(i)+"]", item, s.Index(i)); err != nil {
				return err
			}
		}
		out.Set(s)
	case reflect.Map:
		obj, ok := in.(map[string]any)
		if !ok {
			return fieldErr(path, "want an object, got %s", describe(in))
		}
		m := reflect.MakeMapWithSize(t, len(obj))
		for _, k := range sortedKeys(obj) {
			v := reflect.New(t.Elem()).Elem()
			if err := decodeValue(join(path, k), obj[k], v); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), v)
		}
		out.Set(m)
	case reflect.Struct:
		obj, ok := in.(map[string]any)
		if !ok {
			return fieldErr(path, "want an object, got %s", describe(in))
		}
		fields := map[string]int{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields[name] = i
			names = append(names, name)
		}
		for _, k := range sortedKeys(obj) {
			i, ok := fields[k]
			if !ok {
				return fieldErr(join(path, k), "unknown key (known keys here: %s)", strings.Join(names, ", "))
			}
			if err := decodeValue(join(path, k), obj[k], out.Field(i)); err != nil {
				return err
			}
		}
	default:
		return fieldErr(path, "unsupported field type %s", t)
	}
	return nil
}

func describe(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
