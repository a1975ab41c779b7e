namespace Isotun; internal static class Placeholder {}
