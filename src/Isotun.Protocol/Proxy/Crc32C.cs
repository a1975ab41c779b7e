namespace Isotun.Protocol.Proxy;

/// <summary>CRC-32C (Castagnoli), as PP2_TYPE_CRC32C uses it. Table-driven; headers are small and rare.</summary>
internal static class Crc32C
{
    private static readonly uint[] Table = BuildTable();

    public static uint Compute(ReadOnlySpan<byte> data) => ~Update(0xFFFFFFFF, data);

    /// <summary>Feeds <paramref name="data"/> into a running (not yet inverted) CRC; start with 0xFFFFFFFF, invert at the end.</summary>
    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        foreach (byte b in data) crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc;
    }

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0x82F63B78 ^ (c >> 1) : c >> 1;
            table[i] = c;
        }

        return table;
    }
}
