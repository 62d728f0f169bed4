export const handler = async (event) => ({ runtime: "esm", doubled: (event.n || 0) * 2 });
