"""Files in the web chat: uploads (images, documents), their storage, text and retrieval."""
