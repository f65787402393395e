// Package ociconformance runs the OCI distribution-spec conformance suite
// (github.com/opencontainers/distribution-spec/conformance, a program
// configured by OCI_* environment variables) against a registry and sorts
// its test cases into the specification's workflows: pull, push, content
// discovery and content management. bb's tests run it against bb serve;
// the bench runs it against docker-registry as the reference.
package ociconformance
