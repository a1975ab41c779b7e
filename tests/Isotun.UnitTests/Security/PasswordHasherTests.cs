using Isotun.Security;

namespace Isotun.UnitTests.Security;

public class PasswordHasherTests
{
    // Low cost keeps the suite fast; one test covers the default.
    private const int FastIterations = 1000;

    [Fact]
    public void HashThenVerifyRoundTrips()
    {
        var hash = PasswordHasher.Hash("correct horse", FastIterations);
        Assert.StartsWith("$pbkdf2-sha256$1000$", hash);
        Assert.True(PasswordHasher.Verify("correct horse", hash));
    }

    [Fact]
    public void DefaultCostIs310000()
    {
        var hash = PasswordHasher.Hash("pw");
        Assert.StartsWith("$pbkdf2-sha256$310000$", hash);
        Assert.True(PasswordHasher.Verify("pw", hash));
        var parts = hash.Split('$');
        Assert.Equal(16, Convert.FromBase64String(parts[3]).Length);
        Assert.Equal(32, Convert.FromBase64String(parts[4]).Length);
    }

    [Fact]
    public void WrongPasswordFails()
    {
        var hash = PasswordHasher.Hash("secret", FastIterations);
        Assert.False(PasswordHasher.Verify("Secret", hash));
        Assert.False(PasswordHasher.Verify(string.Empty, hash));
    }

    [Fact]
    public void SaltsDiffer()
    {
        Assert.NotEqual(PasswordHasher.Hash("same", FastIterations), PasswordHasher.Hash("same", FastIterations));
    }

    [Fact]
    public void UnicodePasswordsRoundTrip()
    {
        var hash = PasswordHasher.Hash("pässwörd-密码", FastIterations);
        Assert.True(PasswordHasher.Verify("pässwörd-密码", hash));
    }

    [Theory]
    [InlineData(999)]
    [InlineData(10_000_001)]
    public void HashRejectsIterationsOutOfRange(int iterations)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => PasswordHasher.Hash("pw", iterations));
    }

    [Theory]
    [InlineData("")]
    [InlineData("plain")]
    [InlineData("$")]
    [InlineData("$$$$")]
    [InlineData("$pbkdf2-sha256$")]
    [InlineData("$pbkdf2-sha256$1000$")]
    [InlineData("$pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$")]
    [InlineData("$pbkdf2-sha256$999$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
    [InlineData("$pbkdf2-sha256$10000001$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
    [InlineData("$pbkdf2-sha256$99999999999999999999$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
    [InlineData("$pbkdf2-sha256$-1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
    [InlineData("$pbkdf2-sha256$abc$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
    [InlineData("$pbkdf2-sha256$1000$not base64!$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
    [InlineData("$pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$%%%")]
    [InlineData("$pbkdf2-sha256$1000$AA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
    [InlineData("$pbkdf2-sha1$1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
    [InlineData("$pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=$extra")]
    [InlineData("pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
    public void MalformedHashesFailWithoutThrowing(string encoded)
    {
        Assert.False(PasswordHasher.Verify("pw", encoded));
    }

    [Fact]
    public void NullInputsFailWithoutThrowing()
    {
        Assert.False(PasswordHasher.Verify("pw", null!));
        Assert.False(PasswordHasher.Verify(null!, PasswordHasher.Hash("pw", FastIterations)));
    }

    [Fact]
    public void HugeHashStringFailsWithoutThrowing()
    {
        Assert.False(PasswordHasher.Verify("pw", "$pbkdf2-sha256$1000$" + new string('A', 100_000) + "$AAAA"));
    }

    [Fact]
    public void VerifyDummyDoesNotThrow()
    {
        PasswordHasher.VerifyDummy("anything");
        PasswordHasher.VerifyDummy(string.Empty);
    }
}
