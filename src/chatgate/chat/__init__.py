"""The chat application: accounts, conversations, server-owned generations, context building."""
