package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// pki is the tenant's private CA and the one server certificate it signs
// for every emulated host name.
type pki struct {
	caPEM []byte
	leaf  tls.Certificate
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey // signs IssueServerCertificate's certificates
}

// certHosts are the names the server certificate covers.
var certHosts = []string{
	"login.microsoftonline.com",
	"security.microsoft.com", "*.security.microsoft.com",
	"api.securitycenter.microsoft.com",
	"*.api.security.microsoft.com",
	"*.securitycenter.windows.com",
	"localhost",
	// Receivers: Splunk HEC and the Logs Ingestion endpoints (see ingestCertHosts).
	hecHost, "*.splunkcloud.com",
	// Defender for Cloud Apps App Control proxy (the sign-in hop).
	"*.access.mcas.ms",
	// Office 365 Management Activity API (Enterprise).
	ManageHost,
	// Microsoft Graph.
	GraphHost,
}

// ingestRegions are the Azure regions whose Logs Ingestion host names
// ("<dce>.<region>-1.ingest.monitor.azure.<tld>") the certificate covers: a
// wildcard spans one label only, so each region needs its own entry.
var ingestRegions = map[string][]string{
	"com": {"eastus", "eastus2", "westus", "westus2", "westus3", "centralus", "northcentralus", "southcentralus",
		"westcentralus", "canadacentral", "brazilsouth", "westeurope", "northeurope", "uksouth", "ukwest",
		"francecentral", "germanywestcentral", "swedencentral", "switzerlandnorth", "norwayeast", "australiaeast",
		"southeastasia", "eastasia", "japaneast", "koreacentral", "centralindia", "southafricanorth", "uaenorth"},
	"us": {"usgovvirginia", "usgovarizona", "usgovtexas"},
	"cn": {"chinaeast2", "chinanorth2", "chinanorth3"},
}

func allCertHosts() []string {
	out := append([]string(nil), certHosts...)
	for _, tld := range []string{"com", "us", "cn"} {
		out = append(out, "*.ingest.monitor.azure."+tld)
		for _, r := range ingestRegions[tld] {
			out = append(out, "*."+r+"-1.ingest.monitor.azure."+tld)
		}
	}
	return out
}

func newPKI() (*pki, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("sim: generating CA key: %w", err)
	}
	now := time.Now()
	serial := func() (*big.Int, error) {
		return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	}
	sn, err := serial()
	if err != nil {
		return nil, fmt.Errorf("sim: CA serial: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "defenderharvester emulator CA", Organization: []string{"defenderharvester sim"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sim: creating CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("sim: parsing CA certificate: %w", err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("sim: generating server key: %w", err)
	}
	if sn, err = serial(); err != nil {
		return nil, fmt.Errorf("sim: server serial: %w", err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: "security.microsoft.com"},
		DNSNames:     allCertHosts(),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(2 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sim: creating server certificate: %w", err)
	}
	return &pki{
		caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		leaf:  tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey},
		ca:    ca,
		caKey: caKey,
	}, nil
}
