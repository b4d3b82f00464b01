package broker

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"gearbox/broker/api"
	"gearbox/store/state"
)

// TestViewsMirrorState: the API types that copy a store record field by
// field have a counterpart for each of the record's fields, and the view
// functions copy each one, so that a field added to the record does not
// silently stay out of the API. A field left out on purpose, or one the
// API computes, is named with the reason.
func TestViewsMirrorState(t *testing.T) {
	t.Run("RoutingEvent", func(t *testing.T) {
		checkMirror(t, routingEventView, nil, nil)
	})
	t.Run("Rollout", func(t *testing.T) {
		checkMirror(t, rolloutView, nil, nil)
	})
	t.Run("Webhook", func(t *testing.T) {
		b := &Broker{feed: newFeedHub()}
		checkMirror(t, b.webhookView,
			map[string]string{"Secret": "shown only in the answer that creates the webhook, which sets it itself"},
			map[string]string{"Pending": "counted at the answering broker"})
	})
	t.Run("Deployment", func(t *testing.T) {
		view := func(d *state.Deployment) api.Deployment { return viewDeployment(d, &state.App{Deployment: d.ID}) }
		checkMirror(t, view,
			map[string]string{"App": "the app is in the call's path"},
			map[string]string{"Current": "whether the deployment is the app's current one"})
	})
}

// checkMirror fills every field of a record of type S with a value of
// its own, converts it with view, and checks that each field of S (but
// those in leftOut) has a field of the same name in A with the same value
// (compared as JSON, so that nested types such as state.Mapping and
// api.Mapping are compared by their fields), and that each field of A
// (but those in computed) is one of S's.
func checkMirror[S, A any](t *testing.T, view func(*S) A, leftOut, computed map[string]string) {
	t.Helper()
	var rec S
	f := &filler{t: t}
	f.fill(reflect.ValueOf(&rec).Elem(), reflect.TypeFor[S]().String())
	got := view(&rec)
	sv, av := reflect.ValueOf(rec), reflect.ValueOf(got)
	st, at := sv.Type(), av.Type()
	for i := range st.NumField() {
		sf := st.Field(i)
		if !sf.IsExported() {
			continue
		}
		if _, ok := leftOut[sf.Name]; ok {
			continue
		}
		af, ok := at.FieldByName(sf.Name)
		if !ok {
			t.Errorf("%s.%s has no counterpart in %s: add it there and to the view, or name it as left out, with why", st, sf.Name, at)
			continue
		}
		want, got := jsonOf(t, sv.Field(i)), jsonOf(t, av.FieldByIndex(af.Index))
		if want != got {
			t.Errorf("%s.%s is %s, its view %s.%s is %s: the view does not copy it", st, sf.Name, want, at, af.Name, got)
		}
	}
	for i := range at.NumField() {
		af := at.Field(i)
		if _, ok := computed[af.Name]; ok || !af.IsExported() {
			continue
		}
		if _, ok := st.FieldByName(af.Name); !ok {
			t.Errorf("%s.%s has no counterpart in %s: name it as computed, with why", at, af.Name, st)
		}
	}
	for name := range leftOut {
		if _, ok := st.FieldByName(name); !ok {
			t.Errorf("%s.%s is named as left out but does not exist", st, name)
		}
	}
	for name := range computed {
		if _, ok := at.FieldByName(name); !ok {
			t.Errorf("%s.%s is named as computed but does not exist", at, name)
		}
	}
}

// jsonOf is v encoded as JSON.
func jsonOf(t *testing.T, v reflect.Value) string {
	t.Helper()
	b, err := json.Marshal(v.Interface())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// filler sets values to non-zero values, a different one for each
// string, number and time, so that a view that copies one field into
// another is caught too.
type filler struct {
	t *testing.T
	n int
}

// fill fills v, found at path (for messages), and everything in it.
func (f *filler) fill(v reflect.Value, path string) {
	f.t.Helper()
	f.n++
	if v.Type() == reflect.TypeFor[time.Time]() {
		v.Set(reflect.ValueOf(time.Date(2001, 2, 3, 4, 5, 6, f.n, time.UTC)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("%s-%d", path, f.n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(f.n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(f.n))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(f.n) + 0.5)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		f.fill(p.Elem(), path)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range s.Len() {
			f.fill(s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		f.fill(k, path+"[key]")
		f.fill(e, path+"[value]")
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			if sf := v.Type().Field(i); sf.IsExported() {
				f.fill(v.Field(i), path+"."+sf.Name)
			}
		}
	default:
		f.t.Fatalf("%s: cannot fill a %s; teach filler.fill", path, v.Type())
	}
}
