namespace Isotun.Protocol; internal static class Placeholder {}
