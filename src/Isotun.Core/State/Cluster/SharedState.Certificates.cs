using System.Collections.Concurrent;
using System.Text;
using Isotun.Security;
using Microsoft.Extensions.Logging;

namespace Isotun.State.Cluster;

/// <summary>
/// Client certificates revoked by any node's CRL (<c>client-crl</c>), so that a certificate revoked on one node is
/// refused on every node at once, before the others' CRL files are updated. Each node shares what its own CRLs list
/// and no one else shared yet (<c>revoked-certificates/tenant/serial</c>, the value naming the node), and takes back
/// what it shared once its CRL no longer lists it. A certificate is refused while any node's CRL or this list has it.
/// </summary>
public sealed partial class SharedState
{
    private const string CertificatesDir = "revoked-certificates/";

    /// <summary>
    /// At most this many revoked certificates of a tenant are shared from one node (a bound on what every node reads at
    /// its start, in one answer from the store); past it, a node's own CRL still refuses the rest, and it says so.
    /// </summary>
    public const int MaxSharedCertificatesPerTenant = 10_000;

    // "tenant/serial" → the node that shared it, and its credential stamp (a cookie carries the stamp, not the serial).
    private readonly ConcurrentDictionary<string, (string Node, ulong Stamp)> _revokedCertificates = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Tenant, ulong Stamp), string> _revokedStamps = new();
    // Changes to the two maps together (the watch's thread and a reload's); reads take no lock.
    private readonly Lock _certificatesLock = new();

    /// <summary>The certificate revocations the cluster shares now, as "tenant/serial".</summary>
    public IReadOnlyCollection<string> RevokedCertificates => [.. _revokedCertificates.Keys.Order(StringComparer.Ordinal)];

    /// <summary>Whether some node's CRL revokes this certificate of the tenant (serial number in hex, as the certificate gives it).</summary>
    public bool IsCertificateRevoked(string tenant, string serialHex) =>
        _revokedCertificates.ContainsKey(tenant + "/" + CredentialStamp.Normalize(serialHex));

    /// <summary>Whether some node's CRL revokes the tenant's certificate that a cookie's credential stamp names.</summary>
    public bool IsCertificateStampRevoked(string tenant, ulong stamp) => _revokedStamps.ContainsKey((tenant, stamp));

    /// <summary>
    /// Shares the certificates this node's CRLs revoke now (tenant → normalised serials): those no node shared yet are
    /// written, and those this node shared that its CRLs no longer list are taken back. Call it after every load of
    /// the CRLs, from one thread at a time (the server calls it under its reload lock).
    /// </summary>
    public void ShareCertificateRevocations(IReadOnlyDictionary<string, IReadOnlyCollection<string>> byTenant)
    {
        foreach (var (tenant, serials) in byTenant)
        {
            int shared = 0;
            foreach (var serial in serials)
            {
                string name = tenant + "/" + serial;
                if (_revokedCertificates.TryGetValue(name, out var known))
                {
                    if (known.Node == Node) shared++;
                    continue;
                }
                if (!IsSerial(serial)) continue;
                if (shared >= MaxSharedCertificatesPerTenant)
                {
                    _log.LogWarning("cluster: tenant {Tenant}: this node's CRL revokes more than {Max} certificates; the rest are not shared, and are refused only on nodes whose CRL lists them",
                        tenant, MaxSharedCertificatesPerTenant);
                    break;
                }
                shared++;
                AddCertificate(name, tenant, serial, Node);
                Write(KeyWrite.Put(_prefix + CertificatesDir + name, Encoding.UTF8.GetBytes(Node)));
            }
        }
        foreach (var (name, (node, _)) in _revokedCertificates)
        {
            if (node != Node || name.Split('/', 2) is not [var tenant, var serial]) continue;
            if (byTenant.TryGetValue(tenant, out var serials) && serials.Contains(serial)) continue;
            RemoveCertificate(name, tenant, serial);
            Write(KeyWrite.Delete(_prefix + CertificatesDir + name));
        }
    }

    /// <summary>
    /// Takes the store's list as read whole: what it lacks goes, what it has comes; what is in both is never missing
    /// meanwhile (a login checked during a read again of the store must still find it).
    /// </summary>
    private void LoadCertificates(IEnumerable<KeyValueEntry> entries)
    {
        var read = new Dictionary<string, (string Tenant, string Serial, string Node)>(StringComparer.Ordinal);
        foreach (var e in entries)
            if (CertificateName(e.Key) is var (name, tenant, serial)) read[name] = (tenant, serial, Encoding.UTF8.GetString(e.Value.Span));
        lock (_certificatesLock)
        {
            foreach (var name in _revokedCertificates.Keys)
                if (!read.ContainsKey(name) && name.Split('/', 2) is [var tenant, var serial]) RemoveCertificate(name, tenant, serial);
            foreach (var (name, (tenant, serial, node)) in read) AddCertificate(name, tenant, serial, node);
        }
    }

    /// <summary>A change to the shared certificate revocations, seen in the store (this node's own come back too).</summary>
    private void ApplyCertificate(string key, ReadOnlySpan<byte> value, bool deleted)
    {
        if (CertificateName(key) is not var (name, tenant, serial)) return;
        if (deleted)
        {
            if (RemoveCertificate(name, tenant, serial)) Notify(new SharedChange.CertificateRevocationLifted(tenant, serial));
        }
        else if (AddCertificate(name, tenant, serial, Encoding.UTF8.GetString(value)))
        {
            Notify(new SharedChange.CertificateRevoked(tenant, serial));
        }
    }

    /// <summary>After the store was read again whole: what was revoked or lifted meanwhile.</summary>
    private void NotifyCertificateChanges(IReadOnlyCollection<string> before)
    {
        var now = RevokedCertificates;
        foreach (var name in now.Except(before))
            if (name.Split('/', 2) is [var tenant, var serial]) Notify(new SharedChange.CertificateRevoked(tenant, serial));
        foreach (var name in before.Except(now))
            if (name.Split('/', 2) is [var tenant, var serial]) Notify(new SharedChange.CertificateRevocationLifted(tenant, serial));
    }

    /// <summary>Adds (or updates the node of) a shared revocation; true when it is new here.</summary>
    private bool AddCertificate(string name, string tenant, string serial, string node)
    {
        ulong stamp = CredentialStamp.ForCertificate(serial);
        lock (_certificatesLock)
        {
            bool added = !_revokedCertificates.ContainsKey(name);
            // The stamp first: a cookie check never finds the name without it.
            _revokedStamps[(tenant, stamp)] = serial;
            _revokedCertificates[name] = (node, stamp);
            return added;
        }
    }

    private bool RemoveCertificate(string name, string tenant, string serial)
    {
        lock (_certificatesLock)
        {
            if (!_revokedCertificates.TryRemove(name, out var gone)) return false;
            _revokedStamps.TryRemove(new KeyValuePair<(string, ulong), string>((tenant, gone.Stamp), serial));
            return true;
        }
    }

    /// <summary>A shared revocation's key: its name ("tenant/serial"), tenant and serial; null for anything else found there.</summary>
    private (string Name, string Tenant, string Serial)? CertificateName(string key)
    {
        if (!key.StartsWith(_prefix + CertificatesDir, StringComparison.Ordinal)) return null;
        string name = key[(_prefix.Length + CertificatesDir.Length)..];
        if (name.Split('/') is not [{ Length: > 0 } tenant, var serial] || !IsSerial(serial)) return null;
        return (name, tenant, serial);
    }

    /// <summary>A serial number as a CRL gives it here: upper-case hex, at most 21 bytes (RFC 5280 allows 20, and a sign byte).</summary>
    private static bool IsSerial(string serial) => serial.Length is > 0 and <= 42 && serial.All(char.IsAsciiHexDigitUpper);
}
