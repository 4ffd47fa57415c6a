package dockerx

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/container"
)

// CreateBody is the JSON body of the Engine API's container-create request (POST /containers/create) for
// spec, as CreateContainer sends it, for people to read (bee2d render --json): the container's name is a
// query parameter, not part of it, and its further networks are connected afterwards. The body is built
// from the same values the SDK sends, and left out are the fields whose value is empty (the engine reads a
// missing field as its zero value, so the request means the same): a create body otherwise lists some
// hundred zero fields. Entries of maps and lists are all kept, empty or not (ExposedPorts' {}), and so are
// pointers that are set (StopTimeout 0 is not the engine's default). Struct fields come in the SDK's order,
// map keys sorted, so the same spec always gives the same bytes.
func CreateBody(spec ContainerSpec) ([]byte, error) {
	cfg, hostCfg, netCfg, err := containerConfigs(spec)
	if err != nil {
		return nil, err
	}
	body := container.CreateRequest{Config: cfg, HostConfig: hostCfg, NetworkingConfig: netCfg}
	var b bytes.Buffer
	if err := writeLean(&b, reflect.ValueOf(body)); err != nil {
		return nil, err
	}
	if b.Len() == 0 {
		return []byte("{}"), nil
	}
	return b.Bytes(), nil
}

var marshalerType = reflect.TypeFor[json.Marshaler]()

// writeLean writes v as encoding/json would, except that struct fields whose value is empty are left out.
// It writes nothing when v itself is empty: a zero value, a nil pointer, slice or map, or a struct all of
// whose fields are.
func writeLean(b *bytes.Buffer, v reflect.Value) error {
	if v.Kind() != reflect.Pointer && v.Kind() != reflect.Interface && v.Type().Implements(marshalerType) {
		// A type with its own JSON form (none in the create request today) is written as it says.
		if v.IsZero() {
			return nil
		}
		return writeLeaf(b, v)
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		e := v.Elem()
		if e.Kind() == reflect.Struct {
			return writeLean(b, e)
		}
		// A pointer to a scalar says the value was chosen, zero or not.
		return writeLeaf(b, e)
	case reflect.Struct:
		return writeStruct(b, v)
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		if v.Type().Key().Kind() != reflect.String {
			return writeLeaf(b, v)
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(x, y reflect.Value) int { return strings.Compare(x.String(), y.String()) })
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeLeaf(b, reflect.ValueOf(k.String())); err != nil {
				return err
			}
			b.WriteByte(':')
			if err := writeWhole(b, v.MapIndex(k)); err != nil {
				return err
			}
		}
		b.WriteByte('}')
		return nil
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		b.WriteByte('[')
		for i := range v.Len() {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeWhole(b, v.Index(i)); err != nil {
				return err
			}
		}
		b.WriteByte(']')
		return nil
	}
	if v.IsZero() {
		return nil
	}
	return writeLeaf(b, v)
}

// writeWhole writes an entry of a map or list: leaner if it can be, but always something, since an entry's
// presence is its meaning.
func writeWhole(b *bytes.Buffer, v reflect.Value) error {
	n := b.Len()
	if err := writeLean(b, v); err != nil {
		return err
	}
	if b.Len() == n {
		return writeLeaf(b, v)
	}
	return nil
}

// writeStruct writes the struct's non-empty fields under their JSON names, embedded structs' fields inline
// as encoding/json does.
func writeStruct(b *bytes.Buffer, v reflect.Value) error {
	var fields bytes.Buffer
	if err := writeFields(&fields, v); err != nil {
		return err
	}
	if fields.Len() == 0 {
		return nil
	}
	b.WriteByte('{')
	b.Write(fields.Bytes())
	b.WriteByte('}')
	return nil
}

func writeFields(b *bytes.Buffer, v reflect.Value) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		fv := v.Field(i)
		if f.Anonymous && name == "" {
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					continue
				}
				fv = fv.Elem()
			}
			if fv.Kind() == reflect.Struct {
				if err := writeFields(b, fv); err != nil {
					return err
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		var val bytes.Buffer
		if err := writeLean(&val, fv); err != nil {
			return err
		}
		if val.Len() == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if err := writeLeaf(b, reflect.ValueOf(name)); err != nil {
			return err
		}
		b.WriteByte(':')
		b.Write(val.Bytes())
	}
	return nil
}

// writeLeaf writes v with encoding/json, without escaping <, > and & (a Traefik rule reads better with its
// && as it is; either form is the same JSON string).
func writeLeaf(b *bytes.Buffer, v reflect.Value) error {
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v.Interface()); err != nil {
		return err
	}
	b.Write(bytes.TrimSuffix(out.Bytes(), []byte("\n")))
	return nil
}
