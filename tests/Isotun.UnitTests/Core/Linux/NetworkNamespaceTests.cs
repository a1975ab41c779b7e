using Isotun.Linux;

namespace Isotun.UnitTests.Core.Linux;

public sealed class NetworkNamespaceTests
{
    private static readonly string[] Mountinfo =
    [
        "24 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
        "30 24 0:25 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=402000k,mode=755",
        "612 30 0:4 net:[4026532301] /run/netns/isotun-acme rw shared:300 - nsfs nsfs rw",
    ];

    [Theory]
    [InlineData("isotun-acme", true)]
    [InlineData("isotun-globex", false)] // a bare file left by a crashed run has no mount
    [InlineData("isotun", false)]
    public void A_namespace_counts_as_live_only_when_mounted_at_its_name(string name, bool mounted) =>
        Assert.Equal(mounted, NetworkNamespace.IsMounted(name, Mountinfo));

    [Fact]
    public void This_process_has_no_namespace_of_a_random_name_mounted() =>
        Assert.False(NetworkNamespace.IsMounted("isotun-test-" + Guid.NewGuid().ToString("N")[..8]));
}
