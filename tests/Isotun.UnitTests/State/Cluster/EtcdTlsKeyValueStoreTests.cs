using Isotun.State.Cluster;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>
/// The key-value store contract on a real etcd reached over TLS with a client certificate, and the ways a wrong setup
/// fails: no client certificate, a CA that did not sign etcd's certificate, a name etcd's certificate does not carry.
/// </summary>
public sealed class EtcdTlsKeyValueStoreTests(EtcdTlsServer etcd) : KeyValueStoreContract, IClassFixture<EtcdTlsServer>
{
    protected override IKeyValueStore Connect() => etcd.Connect(etcd.Ca);

    [SkippableFact]
    public async Task Without_a_client_certificate_etcd_refuses_the_store_and_the_error_says_so()
    {
        await using var store = etcd.Connect(etcd.Ca, clientCertificate: false);

        var e = await Assert.ThrowsAsync<KeyValueStoreException>(() => store.GetAsync(P + "k"));

        Assert.Equal(KeyValueStoreError.Unavailable, e.Error);
        Assert.Contains(etcd.Endpoint, e.Message);
        Assert.True(e.Message.Contains("no client certificate was given", StringComparison.Ordinal), e.ToString()); // the whole message and its causes when it fails
    }

    [Fact]
    public void A_scheme_that_disagrees_with_the_tls_settings_is_refused()
    {
        Assert.Throws<ArgumentException>(() => new EtcdKeyValueStore("http://127.0.0.1:2379,https://127.0.0.1:2380"));
        using var tls = EtcdTls.Load(etcd.Ca.CaCertificatePath, null, null);
        Assert.Throws<ArgumentException>(() => new EtcdKeyValueStore("https://127.0.0.1:2379,http://127.0.0.1:2380", tls));
    }

    [SkippableFact]
    public async Task An_unreachable_etcd_is_not_reported_as_a_TLS_failure()
    {
        await using var store = etcd.Connect(etcd.Ca, endpoint: "https://127.0.0.1:1");

        var e = await Assert.ThrowsAsync<KeyValueStoreException>(() => store.GetAsync(P + "k"));

        Assert.Equal(KeyValueStoreError.Unavailable, e.Error);
        Assert.Contains("127.0.0.1:1", e.Message);
        Assert.DoesNotContain("TLS", e.Message);
    }

    [SkippableFact]
    public async Task With_another_CA_etcds_certificate_is_not_trusted()
    {
        await using var store = etcd.Connect(etcd.OtherCa);

        var e = await Assert.ThrowsAsync<KeyValueStoreException>(() => store.GetAsync(P + "k"));

        Assert.Equal(KeyValueStoreError.Unavailable, e.Error);
        Assert.Contains(etcd.Endpoint, e.Message);
        Assert.Contains("not trusted", e.Message);
    }

    [SkippableFact]
    public async Task A_name_etcds_certificate_does_not_carry_is_refused()
    {
        // etcd's certificate names 127.0.0.1 only; localhost reaches the same etcd.
        var endpoint = etcd.Endpoint.Replace("127.0.0.1", "localhost", StringComparison.Ordinal);
        await using var store = etcd.Connect(etcd.Ca, endpoint: endpoint);

        var e = await Assert.ThrowsAsync<KeyValueStoreException>(() => store.GetAsync(P + "k"));

        Assert.Contains("not valid for the name localhost", e.Message);
    }
}
