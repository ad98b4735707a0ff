// The map pages' script and the style preview's (ES modules, served as they are): ESLint's
// recommended rules, for browsers, with Leaflet and Supercluster as the globals their
// <script> tags define.
import js from "@eslint/js";
import globals from "globals";

export default [
  js.configs.recommended,
  {
    files: ["geo_service/maps/static/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: {...globals.browser, L: "readonly"}
    },
    rules: {
      "no-var": "error",
      "prefer-const": "error",
      eqeqeq: ["error", "always"],
      "no-implicit-globals": "error",
      "no-unused-vars": ["error", {args: "none"}]
    }
  }
];
