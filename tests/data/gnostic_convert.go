// How openapi_v2.gnostic.pb was made from openapi_v2.json: what kube-openapi's handler.ToProtoBinary
// does to kube-apiserver's /openapi/v2 (gnostic's ParseDocument, then proto.Marshal), with
// google/gnostic-models at commit a84a29ee8efac8d764f8dd251aa316fcaa61c60c:
//
//	go run gnostic_convert.go < openapi_v2.json > openapi_v2.gnostic.pb
//
// (GOPATH mode works with gnostic-models, gopkg.in/yaml.v3 as go.yaml.in/yaml/v3, and
// google.golang.org/protobuf on GOPATH.) tests/unit/test_openapi_proto.py checks that watchcache
// encodes openapi_v2.json to exactly these bytes.
package main

import (
	"io"
	"os"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
)

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		panic(err)
	}
	doc, err := openapi_v2.ParseDocument(data)
	if err != nil {
		panic(err)
	}
	out, err := proto.Marshal(doc)
	if err != nil {
		panic(err)
	}
	os.Stdout.Write(out)
}
