using Isotun.Protocol.Addressing;
using Isotun.Server;
using Isotun.State.Cluster;
using Isotun.UnitTests.InProcess;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>
/// Two nodes share one store: they agree on the cookie key, and a revocation made on one (a user, a cookie) reaches
/// the other, which is told so it can end the sessions concerned. Run on the SQLite store and on a real etcd.
/// </summary>
public abstract class SharedStateContract
{
    private readonly string _prefix = $"/shared-{Guid.NewGuid():N}";

    protected abstract IKeyValueStore Connect();

    private async Task<(SharedState A, SharedState B, List<SharedChange> SeenByB)> TwoNodesAsync()
    {
        var a = await SharedState.JoinAsync(Connect(), _prefix, "node-a", 32, NullLogger.Instance);
        var b = await SharedState.JoinAsync(Connect(), _prefix, "node-b", 32, NullLogger.Instance);
        var seen = new List<SharedChange>();
        b.Changed = c => { lock (seen) seen.Add(c); };
        return (a, b, seen);
    }

    [SkippableFact]
    public async Task Nodes_agree_on_the_cookie_key_the_first_one_made()
    {
        var (a, b, _) = await TwoNodesAsync();
        await using (a)
        await using (b)
        {
            Assert.Equal(32, a.CookieKeys.Current.Key.Length);
            Assert.Equal(a.CookieKeys.ToBytes(), b.CookieKeys.ToBytes());
        }
    }

    [SkippableFact]
    public async Task Nodes_agree_on_the_tls_ticket_key_the_first_one_to_ask_made()
    {
        var (a, b, _) = await TwoNodesAsync();
        await using (a)
        await using (b)
        {
            var first = await b.TicketKeyAsync(80, CancellationToken.None);
            Assert.Equal(80, first.Length);
            Assert.Equal(first, await a.TicketKeyAsync(80, CancellationToken.None));
            Assert.Equal(first, await b.TicketKeyAsync(80, CancellationToken.None)); // made once, then read
            await Assert.ThrowsAsync<InvalidDataException>(() => a.TicketKeyAsync(48, CancellationToken.None));
        }
    }

    [SkippableFact]
    public async Task Published_tenants_reach_every_node_a_node_joining_later_reads_them_and_a_stale_expected_revision_is_refused()
    {
        var (a, b, seen) = await TwoNodesAsync();
        await using (a)
        await using (b)
        {
            Assert.Null(b.Tenants);
            // Only if none was published yet (expected revision 0): the first push wins.
            var first = await SharedTenants.PublishAsync(a.Store, a.Prefix, "tenants: [{name: acme}]\n", expectedRevision: 0);
            Assert.True(first.Succeeded);
            await Eventually.True(() => b.Tenants?.Revision == first.Revision, "node b did not see the published tenants");
            Assert.Equal("tenants: [{name: acme}]\n", b.Tenants!.Yaml);
            await Eventually.True(() => { lock (seen) return seen.OfType<SharedChange.TenantsPublished>().Any(t => t.Tenants.Revision == first.Revision); }, "node b was not told");

            // A push that read an older revision does not overwrite a newer one.
            var second = await SharedTenants.PublishAsync(a.Store, a.Prefix, "tenants: [{name: acme}, {name: globex}]\n", expectedRevision: first.Revision);
            Assert.True(second.Succeeded);
            var stale = await SharedTenants.PublishAsync(a.Store, a.Prefix, "tenants: [{name: initech}]\n", expectedRevision: first.Revision);
            Assert.False(stale.Succeeded);
            await Eventually.True(() => b.Tenants?.Revision == second.Revision, "node b did not see the second push");
            Assert.Contains("globex", b.Tenants!.Yaml);
            Assert.Equal(second.Revision, (await SharedTenants.ReadAsync(a.Store, a.Prefix))!.Revision);

            // A node that joins later reads them when it joins.
            await using var c = await SharedState.JoinAsync(Connect(), _prefix, "node-c", 32, NullLogger.Instance);
            Assert.Equal((second.Revision, b.Tenants.Yaml), (c.Tenants!.Revision, c.Tenants.Yaml));
        }
    }

    [SkippableFact]
    public async Task Failed_logins_one_node_counted_reach_the_other_until_withdrawn_or_expired()
    {
        var (a, b, _) = await TwoNodesAsync();
        await using (a)
        await using (b)
        {
            const string User = "acme/al ice"; // escaped into one key segment
            a.CountLoginFailures("user", User, 3, DateTimeOffset.UtcNow + TimeSpan.FromMinutes(5));
            b.CountLoginFailures("user", User, 2, DateTimeOffset.UtcNow + TimeSpan.FromMinutes(5));
            await Eventually.True(() => b.LoginFailuresElsewhere("user", User) == 3 && a.LoginFailuresElsewhere("user", User) == 2,
                "each node did not see the other's failures (and only those)");
            Assert.Equal(0, b.LoginFailuresElsewhere("source", User));

            a.CountLoginFailures("user", User, 0, default);
            await Eventually.True(() => b.LoginFailuresElsewhere("user", User) == 0, "node b still counts what node a withdrew");

            // A count whose window ended does not count, wherever it is.
            a.CountLoginFailures("source", "198.18.5.1", 4, DateTimeOffset.UtcNow - TimeSpan.FromSeconds(1));
            a.CountLoginFailures("source", "198.18.5.2", 1, DateTimeOffset.UtcNow + TimeSpan.FromMinutes(5));
            await Eventually.True(() => b.LoginFailuresElsewhere("source", "198.18.5.2") == 1, "node b did not see node a's second count");
            Assert.Equal(0, b.LoginFailuresElsewhere("source", "198.18.5.1"));
        }
    }

    [SkippableFact]
    public async Task A_cluster_cookie_key_from_before_key_rings_becomes_key_0_of_the_ring()
    {
        var legacy = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        await using (var store = Connect()) Assert.True((await store.CompareAndPutAsync(_prefix + "/cookie-key", legacy, 0)).Succeeded);
        await using var a = await SharedState.JoinAsync(Connect(), _prefix, "node-a", 32, NullLogger.Instance);
        Assert.Equal(0u, a.CookieKeys.Current.Id);
        Assert.Equal(legacy, a.CookieKeys.Current.Key);
    }

    [SkippableFact]
    public async Task One_node_rotates_the_cookie_keys_and_the_other_opens_cookies_sealed_with_the_new_key()
    {
        var (a, b, seen) = await TwoNodesAsync();
        await using (a)
        await using (b)
        {
            var lifetime = TimeSpan.FromHours(1);
            var before = new Isotun.Protocol.Cookies.CookieSealer(a.CookieKeys, TimeProvider.System)
                .Seal(new(Guid.NewGuid(), "acme", "alice", DateTimeOffset.UtcNow + lifetime));
            await Task.Delay(10);
            // Both due at once: one rotation wins, and both nodes end up with its ring.
            var rings = await Task.WhenAll(a.RotateCookieKeysAsync(TimeSpan.FromTicks(1), lifetime, default), b.RotateCookieKeysAsync(TimeSpan.FromTicks(1), lifetime, default));
            Assert.All(rings, r => Assert.Equal(1u, r.Current.Id));
            Assert.Equal(rings[0].ToBytes(), rings[1].ToBytes());
            var rotated = rings[0];
            Assert.True(rotated.Current.Created >= DateTimeOffset.UtcNow + SharedState.CookieKeyActivation - TimeSpan.FromSeconds(10),
                "the new key must begin to seal only after every node had time to learn it");

            // Once the new key seals, a's cookies open on b; a cookie from before the rotation still does too.
            // (Whole seconds: a cookie carries its expiry in seconds.)
            var later = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.FromUnixTimeSeconds((DateTimeOffset.UtcNow + SharedState.CookieKeyActivation).ToUnixTimeSeconds() + 5));
            var ticket = new Isotun.Protocol.Cookies.SessionTicket(Guid.NewGuid(), "acme", "alice", later.GetUtcNow() + lifetime);
            var sealedByA = new Isotun.Protocol.Cookies.CookieSealer(a.CookieKeys, later).Seal(ticket);
            var onB = new Isotun.Protocol.Cookies.CookieSealer(b.CookieKeys, later);
            Assert.Equal(Isotun.Protocol.Cookies.CookieOpenResult.Ok, onB.TryOpen(sealedByA, out var opened));
            Assert.Equal(ticket, opened);
            Assert.Equal(Isotun.Protocol.Cookies.CookieOpenResult.Ok, new Isotun.Protocol.Cookies.CookieSealer(b.CookieKeys, TimeProvider.System).TryOpen(before, out _));

            // A rotation a node did not make itself reaches it through the watch, and it is told (forced here: the newest
            // key has not even begun).
            Assert.Equal(2u, (await a.RotateCookieKeysAsync(TimeSpan.MinValue, lifetime, default)).Current.Id);
            await Eventually.True(() => b.CookieKeys.Current.Id == 2, "node b did not learn the rotation");
            await Eventually.True(() => { lock (seen) return seen.OfType<SharedChange.CookieKeysRotated>().Any(r => r.Ring.Current.Id == 2); }, "node b was not told");
        }
    }

    [SkippableFact]
    public async Task A_user_revoked_on_one_node_is_revoked_on_the_other_until_enabled()
    {
        var (a, b, seen) = await TwoNodesAsync();
        await using (a)
        await using (b)
        {
            Assert.True(a.RevokeUser("acme", "alice"));
            Assert.True(a.IsUserRevoked("acme", "alice")); // at once where it was made
            await Eventually.True(() => b.IsUserRevoked("acme", "alice"), "node b did not see the revocation");
            await Eventually.True(() => { lock (seen) return seen.Contains(new SharedChange.UserRevoked("acme", "alice")); }, "node b was not told");
            Assert.False(b.IsUserRevoked("acme", "bob"));
            Assert.False(b.IsUserRevoked("initech", "alice"));

            Assert.Null(b.EnabledSince("acme", "alice"));
            Assert.True(b.EnableUser("acme", "alice"));
            await Eventually.True(() => !a.IsUserRevoked("acme", "alice"), "node a did not see the user enabled");
            // Enabled from a time every node knows: cookies from before stay refused everywhere.
            var since = b.EnabledSince("acme", "alice");
            Assert.NotNull(since);
            Assert.Equal(since!.Value.ToUnixTimeSeconds(), a.EnabledSince("acme", "alice")?.ToUnixTimeSeconds());
            // A third node joining later reads the state as it is.
            await using var c = await SharedState.JoinAsync(Connect(), _prefix, "node-c", 32, NullLogger.Instance);
            Assert.Empty(c.RevokedUsers);
            Assert.Equal(since.Value.ToUnixTimeSeconds(), c.EnabledSince("acme", "alice")?.ToUnixTimeSeconds());
            // Revoked again: revoked, with no enabling time.
            Assert.True(c.RevokeUser("acme", "alice"));
            await Eventually.True(() => a.IsUserRevoked("acme", "alice") && a.EnabledSince("acme", "alice") is null, "node a did not see the second revocation");
        }
    }

    /// <summary>A write the store cannot take (a key past its limit) is dropped and counted; the writes after it go in.</summary>
    [SkippableFact]
    public async Task A_write_the_store_cannot_take_is_dropped_and_the_changes_behind_it_still_reach_the_others()
    {
        var (a, b, _) = await TwoNodesAsync();
        await using (a)
        await using (b)
        {
            a.CountLoginFailures(LoginThrottle.UserScope, "acme/" + new string('x', KeyValueLimits.MaxKeyBytes), 3, DateTimeOffset.UtcNow.AddMinutes(5));
            Assert.True(a.RevokeUser("acme", "alice"));
            await Eventually.True(() => b.IsUserRevoked("acme", "alice"), "the revocation behind the unstorable write did not reach node b");
            await Eventually.True(() => a.Status.PendingWrites == 0, "node a still holds writes");
            Assert.Equal(1, a.Status.DroppedWrites);
        }
    }

    [SkippableFact]
    public async Task A_cookie_revoked_on_one_node_is_refused_on_the_others_and_a_late_node_reads_it()
    {
        var (a, b, seen) = await TwoNodesAsync();
        await using (a)
        await using (b)
        {
            var session = Guid.NewGuid();
            a.RevokeSession(session, DateTimeOffset.UtcNow.AddHours(1));
            await Eventually.True(() => b.IsSessionRevoked(session), "node b did not see the revoked cookie");
            await Eventually.True(() => { lock (seen) return seen.Contains(new SharedChange.SessionRevoked(session)); }, "node b was not told");
            Assert.False(b.IsSessionRevoked(Guid.NewGuid()));
            await using var c = await SharedState.JoinAsync(Connect(), _prefix, "node-c", 32, NullLogger.Instance);
            Assert.True(c.IsSessionRevoked(session));
        }
    }

    [SkippableFact]
    public async Task A_node_whose_lease_the_store_dropped_unseen_takes_a_new_one_and_publishes_with_it()
    {
        await using var a = await SharedState.JoinAsync(new LeaseBlindStore(Connect()), _prefix, "node-a", 32, NullLogger.Instance);
        await using var b = await SharedState.JoinAsync(Connect(), _prefix, "node-b", 32, NullLogger.Instance);
        var (lease, generation) = a.NodeLease;
        await using (var other = Connect()) await other.RevokeLeaseAsync(lease); // a's keepalive says nothing

        a.PublishSessions(new Dictionary<Guid, byte[]> { [Guid.NewGuid()] = "live"u8.ToArray() });

        await Eventually.True(() => a.NodeLease.Generation > generation, "node a kept writing with a lease the store no longer knows");
        Assert.NotEqual(lease, a.NodeLease.Lease);
        Assert.True(await Eventually.Holds(async () => (await b.SessionsAsync(CancellationToken.None)).Any(s => s.Node == "node-a")),
            "node a's session was not published under its new lease");
        await Eventually.True(() => a.Status is { Connected: true, PendingWrites: 0 }, "node a's write still waits");
    }

    [SkippableFact]
    public async Task An_address_claim_refused_for_a_dropped_lease_takes_a_new_lease_and_succeeds_and_old_addresses_stay()
    {
        await using var a = await SharedState.JoinAsync(new LeaseBlindStore(Connect()), _prefix, "node-a", 32, NullLogger.Instance);
        Assert.True(IpNetwork.TryParse("10.20.0.0/24", out var pool));
        var addresses = new ClusterAddresses(a, "acme", pool);
        var alice = await addresses.ClaimAsync("alice", CancellationToken.None);
        var (lease, generation) = a.NodeLease;
        await using (var other = Connect()) await other.RevokeLeaseAsync(lease); // its blocks go with it; a's keepalive says nothing

        // bob needs a block held with the node's lease.
        var bob = await addresses.ClaimAsync("bob", CancellationToken.None);

        Assert.Equal(AddressClaimOutcome.New, bob.Outcome);
        Assert.NotNull(bob.Address);
        Assert.True(a.NodeLease.Generation > generation);
        var again = await addresses.ClaimAsync("alice", CancellationToken.None);
        Assert.Equal(alice.Address, again.Address);
        Assert.Equal("node-a", again.Owner);

        // Each claim recorded its use (a binding without one only starts its clock at the first sweep): with no
        // session published, a sweep that allows no idle time at all releases both at once.
        Assert.Equal(["alice", "bob"], (await addresses.ExpireAsync(TimeSpan.Zero, CancellationToken.None)).Order());
    }

    [SkippableFact]
    public async Task A_binding_another_node_releases_while_it_is_claimed_is_made_again_not_handed_out_unbound()
    {
        var store = new SweptStore(Connect());
        await using var a = await SharedState.JoinAsync(store, _prefix, "node-a", 32, NullLogger.Instance);
        await using var b = await SharedState.JoinAsync(Connect(), _prefix, "node-b", 32, NullLogger.Instance);
        Assert.True(IpNetwork.TryParse("10.20.0.0/24", out var pool));
        var onA = new ClusterAddresses(a, "acme", pool);
        var onB = new ClusterAddresses(b, "acme", pool);
        var first = await onA.ClaimAsync("alice", CancellationToken.None);

        // Alice comes back; between the read of her binding and the record of its use, node b's sweep (allowing no idle
        // time, and with no session published) releases it.
        store.BeforeUse = async () => Assert.Equal(["alice"], await onB.ExpireAsync(TimeSpan.Zero, CancellationToken.None));
        var again = await onA.ClaimAsync("alice", CancellationToken.None);
        Assert.Null(store.BeforeUse); // the sweep ran

        // Her claim was made again: the address she got is bound to her in the store, as every node reads it, so no
        // one else gets it. (Unbound, node b would give her a new address from a block of its own.)
        Assert.Equal(AddressClaimOutcome.New, again.Outcome);
        var fromB = await onB.ClaimAsync("alice", CancellationToken.None);
        Assert.Equal((AddressClaimOutcome.HeldElsewhere, again.Address, "node-a"), (fromB.Outcome, fromB.Address, fromB.Owner));
        Assert.Equal(again.Address, (await onA.ClaimAsync("alice", CancellationToken.None)).Address);
        Assert.NotNull(first.Address);
    }

    [SkippableFact]
    public async Task Users_enabled_again_before_a_time_are_forgotten_everywhere_and_the_revoked_and_later_ones_stay()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var (a, b, _) = await TwoNodesAsync();
        await using (a)
        await using (b)
        await using (var c = await SharedState.JoinAsync(Connect(), _prefix, "node-c", 32, NullLogger.Instance, time))
        {
            Assert.True(c.RevokeUser("acme", "alice") && c.EnableUser("acme", "alice"));
            var cutoff = time.GetUtcNow() + TimeSpan.FromHours(1);
            time.Advance(TimeSpan.FromHours(2));
            Assert.True(c.RevokeUser("acme", "bob") && c.EnableUser("acme", "bob"));
            Assert.True(c.RevokeUser("acme", "carol"));
            await Eventually.True(() => b.EnabledSince("acme", "alice") is not null && b.EnabledSince("acme", "bob") is not null && b.IsUserRevoked("acme", "carol"),
                "node b did not see the changes");

            Assert.Equal(1, await a.ForgetEnablingsBeforeAsync(cutoff, CancellationToken.None));

            await Eventually.True(() => b.EnabledSince("acme", "alice") is null && c.EnabledSince("acme", "alice") is null, "alice's enabling is still known");
            Assert.NotNull(b.EnabledSince("acme", "bob"));
            Assert.True(b.IsUserRevoked("acme", "carol"));
            Assert.False(b.IsUserRevoked("acme", "alice"));
            Assert.Equal(0, await a.ForgetEnablingsBeforeAsync(cutoff, CancellationToken.None));
        }
    }

    /// <summary>Runs <see cref="BeforeUse"/> once, before the next commit that records a binding's use.</summary>
    private sealed class SweptStore(IKeyValueStore inner) : DelegatingStore(inner)
    {
        public Func<Task>? BeforeUse;

        public override async Task<CommitResult> CommitAsync(IReadOnlyList<KeyCondition> conditions, IReadOnlyList<KeyWrite> writes, CancellationToken ct = default)
        {
            if (BeforeUse is { } before && writes.Any(w => !w.IsDelete && w.Key.Contains("/seen/", StringComparison.Ordinal)))
            {
                BeforeUse = null;
                await before();
            }
            return await base.CommitAsync(conditions, writes, ct);
        }
    }

    [SkippableFact]
    public async Task A_login_ban_made_on_one_node_reaches_the_others_until_it_is_lifted_and_a_late_node_reads_it()
    {
        var (a, b, seen) = await TwoNodesAsync();
        await using (a)
        await using (b)
        {
            var until = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.AddMinutes(5).ToUnixTimeSeconds());
            a.BanLogin("user", "acme/al/ice", until); // a key with a '/' of its own
            a.BanLogin("source", "198.18.9.9", until);
            await Eventually.True(() => { lock (seen) return seen.Contains(new SharedChange.LoginBanned("user", "acme/al/ice", until)); }, "node b was not told of the user ban");
            await Eventually.True(() => { lock (seen) return seen.Contains(new SharedChange.LoginBanned("source", "198.18.9.9", until)); }, "node b was not told of the source ban");
            await using (var c = await SharedState.JoinAsync(Connect(), _prefix, "node-c", 32, NullLogger.Instance))
                Assert.Equal([("source", "198.18.9.9", until), ("user", "acme/al/ice", until)], c.LoginBans.OrderBy(x => x.Scope));

            b.LiftLoginBan("user", "acme/al/ice");
            await Eventually.True(() => a.LoginBans.All(x => x.Key != "acme/al/ice"), "node a did not see the ban lifted");
            Assert.Single(b.LoginBans);
        }
    }

    /// <summary>
    /// A node's CRL revokes a certificate: the others refuse it at once (by serial and by a cookie's stamp), and are told.
    /// Shared once: a second node whose CRL lists it too shares nothing more. When the node that shared it takes it out
    /// of its CRL, it is taken back; a node that restarts with a CRL that no longer lists it takes back what it shared.
    /// </summary>
    [SkippableFact]
    public async Task A_certificate_one_nodes_crl_revokes_is_revoked_on_the_others_until_that_crl_no_longer_lists_it()
    {
        var (a, b, seen) = await TwoNodesAsync();
        await using (b)
        {
            await using (a)
            {
                a.ShareCertificateRevocations(Crls(("acme", ["0A1B", "77"])));
                Assert.True(a.IsCertificateRevoked("acme", "0A1B"));
                await Eventually.True(() => b.IsCertificateRevoked("acme", "0a1b"), "node b did not see the revoked certificate");
                Assert.True(b.IsCertificateRevoked("acme", "000A1B")); // as X509Certificate2.SerialNumber may give it
                Assert.True(b.IsCertificateStampRevoked("acme", Isotun.Security.CredentialStamp.ForCertificate("0A1B")));
                Assert.False(b.IsCertificateRevoked("initech", "0A1B")); // another tenant's certificate with the same serial
                Assert.False(b.IsCertificateStampRevoked("initech", Isotun.Security.CredentialStamp.ForCertificate("0A1B")));
                await Eventually.True(() => { lock (seen) return seen.Contains(new SharedChange.CertificateRevoked("acme", "0A1B")); }, "node b was not told");

                // b's CRL lists one of them too, and one more: only the new one is written (and a is told of it).
                b.ShareCertificateRevocations(Crls(("acme", ["77", "99"])));
                await Eventually.True(() => a.IsCertificateRevoked("acme", "99"), "node a did not see b's revocation");

                // a takes 77 out of its CRL: a shared it, so it is taken back everywhere; b, whose CRL lists it, shares it again.
                a.ShareCertificateRevocations(Crls(("acme", ["0A1B"])));
                Assert.False(a.IsCertificateRevoked("acme", "77"));
                await Eventually.True(() => { lock (seen) return seen.Contains(new SharedChange.CertificateRevocationLifted("acme", "77")); }, "node b was not told of the lift");
                b.ShareCertificateRevocations(Crls(("acme", ["77", "99"])));
                await Eventually.True(() => a.IsCertificateRevoked("acme", "77"), "b's CRL still lists 77, and it was not shared again");
                await Eventually.True(() => a.Status.PendingWrites == 0, "node a still holds writes");
            }

            // a comes back with a CRL that lists nothing: what it shared is taken back; what b shared stays.
            await using var again = await SharedState.JoinAsync(Connect(), _prefix, "node-a", 32, NullLogger.Instance);
            Assert.True(again.IsCertificateRevoked("acme", "0A1B")); // read at the join, before its own CRL is shared
            again.ShareCertificateRevocations(Crls(("acme", [])));
            await Eventually.True(() => !b.IsCertificateRevoked("acme", "0A1B"), "what node a shared was not taken back after its restart");
            Assert.True(b.IsCertificateRevoked("acme", "77"));
            Assert.True(again.IsCertificateRevoked("acme", "99"));
        }
    }

    private static Dictionary<string, IReadOnlyCollection<string>> Crls(params (string Tenant, string[] Serials)[] crls) =>
        crls.ToDictionary(c => c.Tenant, c => (IReadOnlyCollection<string>)c.Serials.ToHashSet(StringComparer.Ordinal));

    [SkippableFact]
    public async Task A_nodes_own_changes_are_not_reported_back_to_it()
    {
        var (a, b, seen) = await TwoNodesAsync();
        await using (a)
        await using (b)
        {
            b.RevokeUser("acme", "mallory");
            await Eventually.True(() => a.IsUserRevoked("acme", "mallory"), "node a did not see b's revocation");
            await Task.Delay(300);
            lock (seen) Assert.Empty(seen);
        }
    }
}

public sealed class SqliteSharedStateTests : SharedStateContract, IDisposable
{
    private readonly Security.TempDirectory _temp = new();

    protected override IKeyValueStore Connect() => new SqliteKeyValueStore(_temp.File("kv.db"));

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task While_the_store_is_unreachable_changes_apply_here_wait_and_reach_the_others_when_it_is_back()
    {
        var flaky = new FlakyStore(Connect());
        await using var a = await SharedState.JoinAsync(flaky, "/c", "node-a", 32, NullLogger.Instance);
        await using var b = await SharedState.JoinAsync(Connect(), "/c", "node-b", 32, NullLogger.Instance);

        flaky.Down = true;
        await Eventually.True(() => !a.Status.Connected, "node a did not notice the store was down");
        Assert.NotNull(a.Status.LastError);
        a.RevokeUser("acme", "alice");
        Assert.True(a.IsUserRevoked("acme", "alice")); // applied here at once
        Assert.Equal(1, a.Status.PendingWrites);
        await Task.Delay(500);
        Assert.False(b.IsUserRevoked("acme", "alice"));

        flaky.Down = false;
        await Eventually.True(() => a.Status is { Connected: true, PendingWrites: 0 }, "node a did not write its change once the store was back");
        await Eventually.True(() => b.IsUserRevoked("acme", "alice"), "node b did not see the change made while the store was down");
    }

    [Fact]
    public async Task Changes_waiting_for_the_store_outlive_a_restart_of_the_node_and_reach_the_others_in_their_order()
    {
        string path = WriteJournal.PathFor(_temp.File("isotun.db"));
        await using var b = await SharedState.JoinAsync(Connect(), "/c", "node-b", 32, NullLogger.Instance);
        var flaky = new FlakyStore(Connect());
        var a = await SharedState.JoinAsync(flaky, "/c", "node-a", 32, NullLogger.Instance, journal: WriteJournal.Open(path));
        var session = Guid.NewGuid();
        flaky.Down = true;
        await Eventually.True(() => !a.Status.Connected, "node a did not notice the store was down");
        a.RevokeUser("acme", "alice");
        a.RevokeUser("acme", "bob");
        a.EnableUser("acme", "bob"); // the last word on bob: enabled
        a.RevokeSession(session, DateTimeOffset.UtcNow.AddHours(1));
        a.BanLogin("source", "198.18.0.9", DateTimeOffset.UtcNow.AddHours(1));
        Assert.Equal(5, a.Status.PendingWrites);
        await a.DisposeAsync(); // stops with the store still down: nothing written
        Assert.False(b.IsUserRevoked("acme", "alice"));
        using (var kept = WriteJournal.Open(path)) Assert.Equal(5, kept.Entries().Count);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));

        // The next run of node a, with the store back: what it kept applies there at once and reaches node b.
        await using var again = await SharedState.JoinAsync(Connect(), "/c", "node-a", 32, NullLogger.Instance, journal: WriteJournal.Open(path));
        Assert.True(again.IsUserRevoked("acme", "alice"));
        Assert.True(again.IsSessionRevoked(session));
        await Eventually.True(() => again.Status.PendingWrites == 0, "node a did not write what it kept");
        await Eventually.True(() => b.IsUserRevoked("acme", "alice") && b.IsSessionRevoked(session), "node b did not see the changes kept across node a's restart");
        await Eventually.True(() => b.LoginBans.Any(x => x.Key == "198.18.0.9"), "node b did not see the ban kept across node a's restart");
        Assert.False(b.IsUserRevoked("acme", "bob"));
        Assert.False(again.IsUserRevoked("acme", "bob"));
        await again.DisposeAsync();
        using (var kept = WriteJournal.Open(path)) Assert.Empty(kept.Entries());
    }

    [Fact]
    public async Task While_the_store_is_away_the_session_list_queues_nothing_and_its_difference_goes_once_it_is_back()
    {
        await using var b = await SharedState.JoinAsync(Connect(), "/l", "node-b", 32, NullLogger.Instance);
        var flaky = new FlakyStore(Connect());
        await using var a = await SharedState.JoinAsync(flaky, "/l", "node-a", 32, NullLogger.Instance);
        Guid stays = Guid.NewGuid(), ends = Guid.NewGuid();
        a.PublishSessions(new Dictionary<Guid, byte[]> { [stays] = "stays"u8.ToArray(), [ends] = "ends"u8.ToArray() });
        await Eventually.True(() => a.Status.PendingWrites == 0, "node a did not publish its sessions");

        flaky.Down = true;
        await Eventually.True(() => !a.Status.Connected, "node a did not notice the store was down");
        int waiting = a.Status.PendingWrites;
        var last = new Dictionary<Guid, byte[]>();
        for (int i = 0; i < 500; i++) // clients that come and go through a long outage
        {
            last = new Dictionary<Guid, byte[]> { [stays] = "stays"u8.ToArray(), [Guid.NewGuid()] = [(byte)i] };
            a.PublishSessions(last);
        }
        Assert.Equal(waiting, a.Status.PendingWrites);

        flaky.Down = false;
        await Eventually.True(() => a.Status.Connected, "node a did not notice the store was back");
        a.PublishSessions(last);
        Assert.True(await Eventually.Holds(async () =>
        {
            var listed = (await b.SessionsAsync(CancellationToken.None)).Where(s => s.Node == "node-a").Select(s => s.Summary.ToArray()).ToList();
            return listed.Count == 2 && last.Values.All(v => listed.Any(l => l.SequenceEqual(v)));
        }), "the cluster's list does not hold node a's sessions as they are now");
    }

    [Fact]
    public async Task A_change_to_a_user_that_waited_for_the_store_does_not_undo_a_later_change_another_node_made_meanwhile()
    {
        var (a, b, flaky, time) = await DivergeAsync(journal: null);
        await using (b)
        await using (a)
        {
            flaky.Down = false;
            await Eventually.True(() => a.Status is { Connected: true, PendingWrites: 0 }, "node a did not write what waited");
            await Eventually.True(() => !b.IsUserRevoked("acme", "carol") && !b.IsUserRevoked("acme", "dave"), "node b did not see carol and dave enabled");
            foreach (var node in new[] { a, b })
            {
                Assert.True(node.IsUserRevoked("acme", "alice"), $"{node.Node}: node b's later revocation of alice was undone");
                Assert.False(node.IsUserRevoked("acme", "bob"), $"{node.Node}: node b's later enabling of bob was undone");
                Assert.False(node.IsUserRevoked("acme", "carol"));
                Assert.False(node.IsUserRevoked("acme", "dave"));
            }
            Assert.Equal(time.GetUtcNow().AddSeconds(-10).ToUnixTimeSeconds(), a.EnabledSince("acme", "carol")!.Value.ToUnixTimeSeconds());
        }
    }

    [Fact]
    public async Task A_kept_change_to_a_user_does_not_undo_a_later_change_another_node_made_meanwhile()
    {
        string path = WriteJournal.PathFor(_temp.File("isotun.db"));
        var (a, b, _, time) = await DivergeAsync(WriteJournal.Open(path));
        await using (b)
        {
            await a.DisposeAsync(); // stops with the store still down: what it made waits in the journal

            await using var again = await SharedState.JoinAsync(Connect(), "/r", "node-a", 32, NullLogger.Instance, time, WriteJournal.Open(path));
            Assert.True(again.IsUserRevoked("acme", "alice"));
            Assert.False(again.IsUserRevoked("acme", "bob"));
            Assert.False(again.IsUserRevoked("acme", "carol"));
            Assert.False(again.IsUserRevoked("acme", "dave"));
            await Eventually.True(() => again.Status.PendingWrites == 0, "node a did not write what it kept");
            await Eventually.True(() => !b.IsUserRevoked("acme", "carol") && !b.IsUserRevoked("acme", "dave"), "node b did not see carol and dave enabled");
            Assert.True(b.IsUserRevoked("acme", "alice"));
            Assert.False(b.IsUserRevoked("acme", "bob"));
            await again.DisposeAsync();
            using var kept = WriteJournal.Open(path);
            Assert.Empty(kept.Entries());
        }
    }

    /// <summary>
    /// Node a, cut off from the store, enables alice and carol (whom it had revoked) and dave (whom node b had, as node a
    /// knew), and revokes bob. Ten seconds later node b, not knowing, revokes alice anew (enabling her first) and revokes
    /// and enables bob: those two changes are the later ones, and must stand. Carol's and dave's enablings are the
    /// later ones, and must reach the store. The store stays down for node a.
    /// </summary>
    private async Task<(SharedState A, SharedState B, FlakyStore Flaky, Microsoft.Extensions.Time.Testing.FakeTimeProvider Time)> DivergeAsync(WriteJournal? journal)
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var b = await SharedState.JoinAsync(Connect(), "/r", "node-b", 32, NullLogger.Instance, time);
        var flaky = new FlakyStore(Connect());
        var a = await SharedState.JoinAsync(flaky, "/r", "node-a", 32, NullLogger.Instance, time, journal);
        a.RevokeUser("acme", "alice");
        a.RevokeUser("acme", "carol");
        b.RevokeUser("acme", "dave");
        await Eventually.True(() => a.Status.PendingWrites == 0 && b.Status.PendingWrites == 0 && a.IsUserRevoked("acme", "dave")
            && b.IsUserRevoked("acme", "alice") && b.IsUserRevoked("acme", "carol"), "the revocations did not reach both nodes");

        flaky.Down = true;
        await Eventually.True(() => !a.Status.Connected, "node a did not notice the store was down");
        foreach (var user in new[] { "alice", "carol", "dave" }) Assert.True(a.EnableUser("acme", user));
        Assert.True(a.RevokeUser("acme", "bob"));

        time.Advance(TimeSpan.FromSeconds(10));
        Assert.True(b.EnableUser("acme", "alice") && b.RevokeUser("acme", "alice"));
        Assert.True(b.RevokeUser("acme", "bob") && b.EnableUser("acme", "bob"));
        await Eventually.True(() => b.Status.PendingWrites == 0, "node b did not write its changes");
        return (a, b, flaky, time);
    }

    /// <summary>
    /// While the store is away, failed-login counts (a password spray makes one per failure) stop queueing once many
    /// writes wait; the revocations and bans made meanwhile still wait for the store, and reach it.
    /// </summary>
    [Fact]
    public async Task While_the_store_is_away_failed_login_counts_do_not_grow_the_queue_without_bound()
    {
        var flaky = new FlakyStore(Connect());
        await using var a = await SharedState.JoinAsync(flaky, "/spray", "node-a", 32, NullLogger.Instance);
        flaky.Down = true;
        await Eventually.True(() => !a.Status.Connected, "node a did not notice the store was down");
        var until = DateTimeOffset.UtcNow.AddMinutes(5);
        for (int i = 0; i < SharedState.MaxPendingForFailures + 5_000; i++) a.CountLoginFailures("user", $"acme/u{i}", 1, until);
        Assert.Equal(SharedState.MaxPendingForFailures, a.Status.PendingWrites);
        a.RevokeUser("acme", "mallory");
        Assert.Equal(SharedState.MaxPendingForFailures + 1, a.Status.PendingWrites);
        // Bans still wait, up to a bound of their own; past it a ban holds here only.
        for (int i = 0; i < SharedState.MaxPendingForBans; i++) a.BanLogin("source", $"198.18.{i / 250}.{i % 250}", until);
        Assert.Equal(SharedState.MaxPendingForBans, a.Status.PendingWrites);
        a.BanLogin("user", "acme/spray", until);
        Assert.Equal(SharedState.MaxPendingForBans, a.Status.PendingWrites);
        Assert.Contains(a.LoginBans, b => b.Key == "acme/spray");
        flaky.Down = false;
        await Eventually.True(() => a.Status.PendingWrites == 0, "node a did not write what waited", TimeSpan.FromSeconds(60));
        await using var b = await SharedState.JoinAsync(Connect(), "/spray", "node-b", 32, NullLogger.Instance);
        Assert.True(b.IsUserRevoked("acme", "mallory"));
    }

    /// <summary>The in-memory way to take a store away: every call fails as unavailable while <see cref="Down"/>.</summary>
    private sealed class FlakyStore(IKeyValueStore inner) : DelegatingStore(inner)
    {
        public volatile bool Down;

        private void Check()
        {
            if (Down) throw new KeyValueStoreException(KeyValueStoreError.Unavailable, "the store is down (test)");
        }

        public override Task<KeyValueEntry?> GetAsync(string key, CancellationToken ct = default) { Check(); return base.GetAsync(key, ct); }

        public override Task<RangeResult> RangeAsync(string prefix, CancellationToken ct = default) { Check(); return base.RangeAsync(prefix, ct); }

        public override Task<CommitResult> CommitAsync(IReadOnlyList<KeyCondition> conditions, IReadOnlyList<KeyWrite> writes, CancellationToken ct = default)
        {
            Check();
            return base.CommitAsync(conditions, writes, ct);
        }

        public override Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken ct = default) { Check(); return base.GrantLeaseAsync(ttl, ct); }

        public override Task RevokeLeaseAsync(long lease, CancellationToken ct = default) { Check(); return base.RevokeLeaseAsync(lease, ct); }

        public override async IAsyncEnumerable<KeyValueEvent> WatchAsync(string prefix, long fromRevision, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default,
            bool progress = false)
        {
            Check();
            await foreach (var e in base.WatchAsync(prefix, fromRevision, ct, progress))
            {
                Check();
                yield return e;
            }
        }
    }
}

[Collection(EtcdCollection.Name)]
public sealed class EtcdSharedStateTests(EtcdServer etcd) : SharedStateContract
{
    protected override IKeyValueStore Connect() => etcd.Connect();
}
