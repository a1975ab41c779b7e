using Isotun.Protocol.Cookies;
using Isotun.Server;
using Isotun.State;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// A server alone rotates its cookie keys in its key file: a new key seals once the newest is rotate-hours old, the
/// cookies of older keys open until they expire (across a restart too), and a ring that cannot be written is not used.
/// </summary>
public sealed class CookieKeyRotationTests : IDisposable
{
    private static readonly DateTimeOffset Start = DateTimeOffset.FromUnixTimeSeconds(1_796_000_000);
    private readonly TempDirectory _temp = new();
    private readonly FakeTimeProvider _time = new(Start);
    private readonly string _keys;
    private readonly string _config;

    public CookieKeyRotationTests()
    {
        _keys = _temp.File("keys/cookie.key");
        _config = TestServerConfig.Write(_temp, $"""
            cookie:
              key-file: {_keys}
              lifetime: 3600
              rotate-hours: 24
            tenants:
              - name: a
                pool: 10.10.0.0/24
            """);
    }

    public void Dispose() => _temp.Dispose();

    private VpnServer Server() => new(TestServerConfig.Load(_config), NullLoggerFactory.Instance, new MemoryStateStore(), _time);

    private SessionTicket Ticket() => new(Guid.NewGuid(), "a", "alice", _time.GetUtcNow() + TimeSpan.FromHours(1));

    [Fact]
    public async Task A_new_key_seals_once_the_newest_is_rotate_hours_old_and_old_cookies_open_across_a_restart()
    {
        await using var server = Server();
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_keys));
        var first = Ticket();
        var before = server.Cookies.Seal(first);

        _time.Advance(TimeSpan.FromHours(23));
        await server.RotateCookieKeysAsync(CancellationToken.None);
        Assert.Equal(0u, server.Cookies.Ring.Current.Id); // not due yet

        _time.Advance(TimeSpan.FromHours(1));
        await server.RotateCookieKeysAsync(CancellationToken.None);
        Assert.Equal([1u, 0u], server.Cookies.Ring.Keys.Select(k => k.Id));
        var second = Ticket();
        var after = server.Cookies.Seal(second);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_keys));

        // A restart reads the ring from the file: both cookies open (the first one has expired by now, which is not
        // the same as forged).
        await using var again = Server();
        Assert.Equal(server.Cookies.Ring.ToBytes(), again.Cookies.Ring.ToBytes());
        Assert.Equal(CookieOpenResult.Ok, again.Cookies.TryOpen(after, out var opened));
        Assert.Equal(second, opened);
        Assert.Equal(CookieOpenResult.Expired, again.Cookies.TryOpen(before, out _));

        // A day later key 0 has sealed nothing for longer than a cookie lives: the next rotation drops it.
        _time.Advance(TimeSpan.FromHours(24));
        await again.RotateCookieKeysAsync(CancellationToken.None);
        Assert.Equal([2u, 1u], again.Cookies.Ring.Keys.Select(k => k.Id));
        Assert.Equal(CookieOpenResult.Tampered, again.Cookies.TryOpen(before, out _));
    }

    [Fact]
    public async Task A_rotation_that_cannot_be_written_is_not_used_and_the_current_key_keeps_sealing()
    {
        await using var server = Server();
        Directory.Delete(Path.GetDirectoryName(_keys)!, recursive: true); // the ring cannot be kept now
        _time.Advance(TimeSpan.FromHours(25));
        await server.RotateCookieKeysAsync(CancellationToken.None);
        Assert.Equal(0u, server.Cookies.Ring.Current.Id);
        Assert.Equal(CookieOpenResult.Ok, server.Cookies.TryOpen(server.Cookies.Seal(Ticket()), out _));
    }

    [Fact]
    public void A_key_file_from_before_key_rings_is_key_0_and_one_readable_by_others_is_refused()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(_keys)!);
        var bare = System.Security.Cryptography.RandomNumberGenerator.GetBytes(CookieSealer.KeyLength);
        Isotun.Security.SecretFile.WriteAllBytes(_keys, bare, overwrite: true);
        var ring = CookieKeyFile.LoadOrCreate(_keys, Start);
        Assert.Equal(0u, ring.Current.Id);
        Assert.Equal(bare, ring.Current.Key);

        File.SetUnixFileMode(_keys, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        Assert.Contains("chmod 600", Assert.Throws<InvalidOperationException>(() => CookieKeyFile.LoadOrCreate(_keys, Start)).Message);
        File.WriteAllBytes(_keys, new byte[50]);
        File.SetUnixFileMode(_keys, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Assert.Contains("50 bytes", Assert.Throws<InvalidOperationException>(() => CookieKeyFile.LoadOrCreate(_keys, Start)).Message);
    }
}
