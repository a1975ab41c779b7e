using Isotun.Linux;

namespace Isotun.UnitTests.Core.Lab;

/// <summary>The sd_notify sender and the lab's receiving socket, over a real unix datagram socket.</summary>
public sealed class SystemdNotifyTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("isotun-notify-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Ready_arrives_with_its_status_and_the_socket_is_private()
    {
        using var socket = new NotifySocket(Path.Combine(_dir, "n.sock"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket.Path));
        Assert.True(SystemdNotify.Send(socket.Path, "READY=1\nSTATUS=tunnel up: 10.10.0.2"));
        var message = socket.Receive(TimeSpan.FromSeconds(5));
        Assert.NotNull(message);
        Assert.Equal("1", message["READY"]);
        Assert.Equal("tunnel up: 10.10.0.2", message["STATUS"]);
    }

    [Fact]
    public void Nothing_arrives_when_nothing_was_sent()
    {
        using var socket = new NotifySocket(Path.Combine(_dir, "quiet.sock"));
        Assert.Null(socket.Receive(TimeSpan.FromMilliseconds(50)));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("relative/path")]
    [InlineData("/nonexistent/dir/socket")]
    public void Without_a_reachable_socket_sending_is_a_quiet_no(string? name) =>
        Assert.False(SystemdNotify.Send(name, "READY=1"));

    [Fact]
    public void A_supervisor_that_never_reads_does_not_stall_the_sender()
    {
        using var socket = new NotifySocket(Path.Combine(_dir, "full.sock"));
        // The receiving queue holds a bounded number of datagrams (net.unix.max_dgram_qlen, and its buffer): past it a
        // blocking send would wait forever. Every send returns, the late ones with a quiet no.
        var sent = Task.Run(() => Enumerable.Range(0, 5000).Count(i => SystemdNotify.Send(socket.Path, $"STATUS=message {i}")));
        Assert.True(sent.Wait(TimeSpan.FromSeconds(30)), "a send blocked on the full queue");
        Assert.InRange(sent.Result, 1, 4999);
        Assert.Equal("message 0", socket.Receive(TimeSpan.FromSeconds(1))!["STATUS"]);
    }

    [Fact]
    public void The_socket_is_removed_when_disposed()
    {
        var path = Path.Combine(_dir, "gone.sock");
        new NotifySocket(path).Dispose();
        Assert.False(File.Exists(path));
    }
}
