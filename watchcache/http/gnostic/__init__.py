"""gnostic's OpenAPI v2 protobuf message, ``openapi.v2.Document``: what kube-apiserver serves at
``/openapi/v2`` as ``application/com.github.proto-openapi.spec.v2.v1.0+protobuf``.

``OpenAPIv2.proto`` is google/gnostic-models ``openapiv2/OpenAPIv2.proto`` (Apache-2.0) as it is, at
commit a84a29ee8efac8d764f8dd251aa316fcaa61c60c; ``OpenAPIv2_pb2.py`` and ``.pyi`` are generated from
it by ``scripts/gen-openapiv2`` (grpcio-tools 1.66.2, protoc 27.2: protobuf gencode 5.27.2, as the
etcd client's own). Do not edit them; regenerate.
"""
